#!/bin/sh
# standort: a host's whole configuration as one transaction (after NixOS's
# switch-to-configuration): every file of the bundle is staged and checked
# with its daemon's own test, all are swapped in together, the daemons are
# reloaded in the bundle's order, the health checks prove the new
# configuration serves, and if any step fails every file goes back and the old
# configuration is reloaded. A file that can cut off the deployer (the packet
# filter) must be confirmed over a fresh connection, or the host rolls the
# whole transaction back by itself, also after a reboot.
#
#   apply.sh [OPTIONS] < BUNDLE      apply the bundle read from stdin
#   apply.sh [OPTIONS] --confirm     confirm the pending transaction
#   apply.sh [OPTIONS] --expire ID   (watchdog) roll back pending transaction ID
#   apply.sh [OPTIONS] --recover     (boot) finish or undo what a crash left
#   apply.sh [OPTIONS] --status      print the state
# OPTIONS: --state-dir DIR (/var/lib/standort/deliver), --lock FILE
#   (/run/standort-deliver.lock), --health-attempts N (10), --health-interval S (1),
#   --step-timeout S (300: longest a single check, reload, health or stop command may run)
#
# BUNDLE (written by lib/deliver/bundle.ts): the line `standort-bundle 1`, then
# lines `<index> <field> <base64>` (fields path, mode, owner, content, check,
# reload, health, remove, absent, confirm), then `end <files> <sha256>` where
# the hash covers every line before it: a truncated bundle is refused.
# `check` runs as `sh -c CHECK standort-check STAGED`; `remove` stops what a
# file started before it goes; `absent` runs once it is gone (also when a
# first install is rolled back), returning the daemon to its state without it.
#
# Crash safety: a journal (overwritten in place, so no step after staging
# needs free space or inodes) records the phase. Old files are kept as hard
# links next to their targets and come back by rename. The next run (or
# --recover at boot) rolls back a transaction that was cut off after staging,
# and discards one cut off while staging.
#
# Exit codes: 0 applied, unchanged or confirmed; 2 usage, bad bundle or no
# room (nothing changed); 3 refused (a check failed; nothing changed);
# 4 rolled back (the old configuration serves again); 5 rollback failed (needs
# an operator); 6 confirmation too late (already rolled back).
set -u
umask 077

STATE=/var/lib/standort/deliver LOCK=/run/standort-deliver.lock
HEALTH_ATTEMPTS=10 HEALTH_INTERVAL=1 STEP_TIMEOUT=300 ACTION=apply TOKEN=""
SELF=$(readlink -f "$0" 2>/dev/null || printf '%s' "$0")
# A dropped SSH connection (HUP, or PIPE when writing to it) must not cut a transaction in half.
trap '' HUP PIPE

log() {
	printf 'standort-apply: %s\n' "$*" >&2
	if command -v logger >/dev/null 2>&1; then logger -t standort-apply -- "$*" 2>/dev/null || true; fi
}
die() { code=$1; shift; log "$*"; exit "$code"; }

while [ $# -gt 0 ]; do
	case "$1" in
		--state-dir) STATE=$2; shift 2 ;;
		--lock) LOCK=$2; shift 2 ;;
		--health-attempts) HEALTH_ATTEMPTS=$2; shift 2 ;;
		--health-interval) HEALTH_INTERVAL=$2; shift 2 ;;
		--step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
		--confirm) ACTION=confirm; shift ;;
		--expire) ACTION=expire; TOKEN=$2; shift 2 ;;
		--recover) ACTION=recover; shift ;;
		--status) ACTION=status; shift ;;
		*) die 2 "unknown argument: $1" ;;
	esac
done
case "$HEALTH_ATTEMPTS" in '' | *[!0-9]*) die 2 "--health-attempts must be a number" ;; esac
case "$STEP_TIMEOUT" in '' | *[!0-9]* | 0) die 2 "--step-timeout must be a positive number of seconds" ;; esac
case "$HEALTH_INTERVAL" in '' | *[!0-9.]* | *.*.*) die 2 "--health-interval must be a number of seconds" ;; esac
case "$STATE" in /*) ;; *) die 2 "--state-dir must be an absolute path: $STATE" ;; esac

TX="$STATE/tx"             # the transaction in progress (meta only: contents never stay here)
CURRENT="$STATE/current"   # the meta of the committed bundle (which files, their reloads)
LAST="$STATE/last"         # the outcome of the last transaction, read by --confirm

# A watchdog or a boot with no state has nothing to settle (and must not create one).
case "$ACTION" in expire | recover | confirm | status) [ -d "$STATE" ] || { log "no transaction state in $STATE"; exit 0; } ;; esac
mkdir -p "$STATE" "$(dirname "$LOCK")" 2>/dev/null || die 2 "cannot create $STATE"
chmod 700 "$STATE"
# A watchdog whose transaction still runs past its deadline (a reload or health check that hangs while a new
# packet filter may lock the deployer out) stops it first: it holds the lock the rollback needs.
if [ "$ACTION" = expire ] && [ -d "$TX" ] && [ "$(sed -n '1s/ *$//p' "$TX/id" 2>/dev/null)" = "$TOKEN" ]; then
	case "$(sed -n '1s/ *$//p' "$TX/journal" 2>/dev/null)" in
		swapping | reloading | checking)
			pid=$(sed -n '1s/ *$//p' "$TX/pid" 2>/dev/null)
			deadline=$(sed -n '1s/ *$//p' "$TX/deadline" 2>/dev/null)
			if [ "$(date +%s)" -ge "${deadline:-0}" ] && [ "${pid:-0}" -gt 1 ] && kill -0 "$pid" 2>/dev/null; then
				log "transaction $TOKEN still runs past its deadline: stopping it to roll it back"
				# Its children too (the step it hangs in), but not this watchdog, which it may have started itself.
				kids=$(pgrep -P "$pid" 2>/dev/null)
				kill -KILL "$pid" 2>/dev/null
				for kid in $kids; do [ "$kid" = "$$" ] || kill -KILL "$kid" 2>/dev/null; done
			fi
			;;
	esac
fi
exec 9>"$LOCK" || die 2 "cannot open the lock $LOCK"
command -v flock >/dev/null 2>&1 || die 2 "flock(1) is missing (util-linux): transactions cannot be kept apart"
flock -w 300 9 || die 2 "another transaction has held $LOCK for 300 s"

# Overwrites a small pre-allocated file in place: needs no new block or inode on a full disk.
put() { printf '%-62.62s\n' "$2" 1<>"$1"; }
get() { sed -n '1s/ *$//p' "$1" 2>/dev/null; }
# Creates a pre-allocated record; fails (nothing changed yet) when there is no room.
record() { printf '%-62.62s\n' "$2" >"$1"; }

field() { cat "$1/$2.$3" 2>/dev/null; }
has() { [ -s "$1/$2.$3" ]; }
# Commands never inherit the lock (a daemon a reload starts would hold it forever), and none runs longer than
# --step-timeout: a hung check, reload or health check counts as failed (timeout(1): exit 124).
bounded() {
	if command -v timeout >/dev/null 2>&1; then timeout -k 5 "$STEP_TIMEOUT" "$@" 9>&-; else "$@" 9>&-; fi
}
run_cmd() { bounded sh -c "$1"; }

# Splits bundle $1 into decoded field files $2/<index>.<field>; checks the framing and the hash.
unpack() {
	[ "$(sed -n 1p "$1")" = "standort-bundle 1" ] || return 1
	set -- "$1" "$2" $(tail -n 1 "$1")
	[ "${3:-}" = "end" ] || return 1
	[ "$(sed '$d' "$1" | sha256sum | cut -d' ' -f1)" = "${5:-}" ] || return 1
	mkdir -p "$2" || return 1
	awk -v d="$2" 'NR > 1 && $1 ~ /^[0-9]+$/ && $2 ~ /^[a-z]+$/ { f = d "/" $1 "." $2; printf "%s", $3 > f; close(f) }' "$1" || return 1
	for f in "$2"/*; do
		[ -f "$f" ] || continue
		base64 -d <"$f" >"$f.d" && mv -f "$f.d" "$f" || return 1
	done
	[ "$(ls "$2" | grep -c '\.path$')" = "$4" ] || return 1
}

# Entries of the transaction: $TX/entries lists `<k> <new index or -> <old index or ->` in bundle order.
entries() { cat "$TX/entries" 2>/dev/null; }
target_of() { if [ "$2" != - ]; then field "$TX/new" "$2" path; else field "$TX/old" "$3" path; fi; }
old_link() { printf '%s/.%s.standort-old' "$(dirname "$1")" "$(basename "$1")"; }
new_temp() { printf '%s/.%s.standort-new' "$(dirname "$1")" "$(basename "$1")"; }

# Runs each distinct command of field $2 of the entries' side $1 (new|old) once, in order.
run_each() {
	side=$1 name=$2 seen="" failed=0
	while read -r k i j; do
		case "$side" in new) idx=$i ;; *) idx=$j ;; esac
		[ "$idx" != - ] && has "$TX/$side" "$idx" "$name" || continue
		cmd=$(field "$TX/$side" "$idx" "$name")
		case "$seen" in *"<$cmd>"*) continue ;; esac
		seen="$seen<$cmd>"
		if ! output=$(run_cmd "$cmd" 2>&1); then
			printf '%s\n' "$output" >&2
			log "$name failed for $(target_of "$k" "$i" "$j"): $cmd"
			failed=1
			[ "${3:-}" = stop ] && return 1
		fi
	done <<-EOF
	$(entries)
	EOF
	return $failed
}

# Health checks of side $1 (new|old), retried together until all pass.
health() {
	attempt=1
	while :; do
		if err=$(run_each "$1" health stop 2>&1); then return 0; fi
		if [ "$attempt" -ge "$HEALTH_ATTEMPTS" ]; then
			printf '%s\n' "$err" >&2
			log "health check failed $attempt times"
			return 1
		fi
		attempt=$((attempt + 1))
		sleep "$HEALTH_INTERVAL"
	done
}

# Whether the target of entry $1 existed when it was staged ($TX/had lists those entries).
had() { grep -qx "$1" "$TX/had" 2>/dev/null; }

# Puts every old file back (by rename: no room needed), removes files that did not exist before, reloads the
# old configuration. Decided by what staging recorded, not by the previous bundle (a first delivery replaces
# the distribution's own files), and safe to run again after a crash halfway.
rollback() {
	put "$TX/journal" rolling-back
	ok=0
	while read -r k i j; do
		[ -n "$k" ] || continue
		t=$(target_of "$k" "$i" "$j")
		rm -f "$(new_temp "$t")"
		o=$(old_link "$t")
		if had "$k"; then
			# Not swapped yet (link and target are one file): only the link goes. Already restored: nothing left.
			if [ -e "$o" ] && [ "$o" -ef "$t" ]; then rm -f "$o" || ok=1; elif [ -e "$o" ]; then mv -f "$o" "$t" || ok=1; fi
		elif [ -e "$t" ]; then
			if [ "$i" != - ] && has "$TX/new" "$i" remove; then run_cmd "$(field "$TX/new" "$i" remove)" >/dev/null 2>&1 || log "stopping for $t failed"; fi
			rm -f "$t" || ok=1
		fi
	done <<-EOF
	$(entries)
	EOF
	# keepalived's health check reads its log since the reloads began: from here, not from the failed ones.
	sleep 1
	STANDORT_TX_START=$(date +%s)
	export STANDORT_TX_START
	# Reloads in bundle order, each once: a restored file with the reload its bundle gave it (the previous
	# bundle's, or the new one's for a distribution file), a file gone again with what forgets it.
	seen=""
	while read -r k i j; do
		[ -n "$k" ] || continue
		if had "$k"; then
			if [ "$j" != - ] && has "$TX/old" "$j" reload; then cmd=$(field "$TX/old" "$j" reload)
			elif [ "$i" != - ] && has "$TX/new" "$i" reload; then cmd=$(field "$TX/new" "$i" reload)
			else continue; fi
		elif [ "$i" != - ] && has "$TX/new" "$i" absent; then cmd=$(field "$TX/new" "$i" absent)
		else continue; fi
		case "$seen" in *"<$cmd>"*) continue ;; esac
		seen="$seen<$cmd>"
		if ! output=$(run_cmd "$cmd" 2>&1); then
			printf '%s\n' "$output" >&2
			log "reload failed while rolling back: $cmd"
			ok=1
		fi
	done <<-EOF
	$(entries)
	EOF
	# The old configuration must be shown to serve again, as the new one had to.
	if [ "$ok" = 0 ]; then health old || ok=1; fi
	if [ "$ok" = 0 ]; then
		rm -rf "$TX"
		put "$LAST" "rolled-back $1"
		return 0
	fi
	put "$TX/journal" rollback-failed
	put "$LAST" "rollback-failed $1"
	return 1
}

rollback_or_die() {
	reason=$1
	if rollback "$2"; then die 4 "rolled back: $reason; the previous configuration serves again"; fi
	die 5 "ROLLBACK FAILED after: $reason; the host needs an operator (state in $TX)"
}

# Drops the old files and the transaction; the new bundle's meta becomes the current one. Safe to run again
# after a crash halfway (the meta already moved: only the transaction is left to drop).
commit() {
	put "$TX/journal" committing
	while read -r k i j; do
		[ -n "$k" ] || continue
		t=$(target_of "$k" "$i" "$j")
		[ -z "$t" ] || rm -f "$(old_link "$t")"
	done <<-EOF
	$(entries)
	EOF
	if [ -d "$TX/new" ]; then rm -rf "$CURRENT.old" && { [ ! -d "$CURRENT" ] || mv "$CURRENT" "$CURRENT.old"; } && mv "$TX/new" "$CURRENT" || return 1; fi
	rm -rf "$TX" "$CURRENT.old"
	put "$LAST" "committed $1"
}

# Discards a transaction cut off while staging: nothing was swapped yet.
discard() {
	while read -r k i j; do
		t=$(target_of "$k" "$i" "$j")
		rm -f "$(new_temp "$t")" "$(old_link "$t")"
	done <<-EOF
	$(entries)
	EOF
	rm -rf "$TX"
}

# Arms the watchdog that rolls transaction $2 back after $1 seconds unless confirmed. systemd-run when systemd
# runs (the timer outlives the SSH session); otherwise a detached process. A reboot loses either: --recover re-arms.
arm() {
	if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
		systemd-run --quiet --collect --unit="standort-apply-expire-$2-$1" --on-active="$1s" \
			/bin/sh "$SELF" --expire "$2" --state-dir "$STATE" --lock "$LOCK" >/dev/null 2>&1 && return 0
	fi
	setsid sh -c 'sleep "$1"; shift; exec sh "$@"' standort-apply-watchdog "$1" "$SELF" \
		--expire "$2" --state-dir "$STATE" --lock "$LOCK" </dev/null >/dev/null 2>&1 9>&- &
}

# Settles what a crash, a kill or a reboot left behind. $1: why (for the log).
settle() {
	[ -d "$TX" ] || return 0
	phase=$(get "$TX/journal")
	id=$(get "$TX/id")
	case "$phase" in
		staging | "")
			discard
			log "discarded transaction $id, cut off while staging ($1); nothing had changed"
			;;
		pending)
			if [ "$1" = apply ]; then
				# This run arrived over a fresh connection: the pending change let the deployer in.
				commit "$id"
				log "confirmed transaction $id (a new delivery reached the host)"
			else
				deadline=$(get "$TX/deadline")
				window=$(get "$TX/window")
				now=$(date +%s)
				# Never longer than the confirmation window itself: a clock that jumped back must not stretch it.
				if [ "$((deadline - now))" -gt "${window:-0}" ]; then deadline=$((now + ${window:-0})) && put "$TX/deadline" "$deadline"; fi
				if [ "$now" -ge "${deadline:-0}" ]; then
					rollback "$id not confirmed before a reboot" && put "$LAST" "expired $id" && log "rolled back transaction $id: not confirmed in time"
				else
					arm $((deadline - now)) "$id"
					log "transaction $id awaits confirmation for $((deadline - now)) more s"
				fi
			fi
			;;
		committing) commit "$id" ;;
		*)
			if rollback "$id interrupted ($phase)"; then
				log "rolled back transaction $id, cut off while $phase ($1)"
			else
				die 5 "ROLLBACK FAILED of transaction $id cut off while $phase; the host needs an operator"
			fi
			;;
	esac
}

case "$ACTION" in
	status)
		printf 'transaction: %s\nlast: %s\n' "$( [ -d "$TX" ] && echo "$(get "$TX/id") $(get "$TX/journal")" || echo none)" "$(get "$LAST")"
		exit 0
		;;
	recover)
		settle boot
		exit 0
		;;
	expire)
		phase=$(get "$TX/journal")
		case "$phase" in pending | swapping | reloading | checking) ;; *) phase="" ;; esac
		if [ -d "$TX" ] && [ -n "$phase" ] && [ "$(get "$TX/id")" = "$TOKEN" ] && [ "$(date +%s)" -ge "$(get "$TX/deadline")" ]; then
			if rollback "$TOKEN not confirmed"; then
				put "$LAST" "expired $TOKEN"
				die 4 "rolled back transaction $TOKEN: not confirmed in time"
			fi
			die 5 "ROLLBACK FAILED of transaction $TOKEN after a missing confirmation; the host needs an operator"
		fi
		exit 0
		;;
	confirm)
		if [ -d "$TX" ] && [ "$(get "$TX/journal")" = pending ]; then
			id=$(get "$TX/id")
			commit "$id"
			log "confirmed transaction $id"
			exit 0
		fi
		case "$(get "$LAST")" in
			expired* | rolled-back*) die 6 "the transaction was not confirmed in time and has been rolled back ($(get "$LAST"))" ;;
			rollback-failed*) die 5 "the transaction's rollback failed ($(get "$LAST")); the host needs an operator" ;;
		esac
		log "nothing awaits confirmation"
		exit 0
		;;
esac

# --- apply ---
[ -f "$LAST" ] || record "$LAST" none || die 2 "no room in $STATE; nothing changed"
settle apply
[ -d "$TX" ] && die 5 "an earlier transaction could not be rolled back; the host needs an operator (state in $TX)"

ID="$(date +%s)-$$"
mkdir "$TX" && record "$TX/journal" staging && record "$TX/id" "$ID" && record "$TX/deadline" 0 && record "$TX/window" 0 &&
	record "$TX/pid" $$ ||
	{ rm -rf "$TX"; die 2 "no room in $STATE to stage a transaction; nothing changed"; }
# Whatever happens from here until the swap, staged copies (which may hold secrets) do not stay behind.
trap '[ "$(get "$TX/journal")" = staging ] && discard' EXIT
trap 'exit 130' INT TERM

BUNDLE="$TX/bundle"
cat >"$BUNDLE" || die 2 "no room to receive the bundle; nothing changed"
unpack "$BUNDLE" "$TX/new" || die 2 "the bundle is incomplete or damaged (framing, file count or hash); nothing changed"
rm -f "$BUNDLE"
if [ -d "$CURRENT" ]; then cp -R "$CURRENT" "$TX/old" || die 2 "no room to record the current state; nothing changed"; else mkdir "$TX/old" || die 2 "no room; nothing changed"; fi

# Which files change: content, mode or owner differ, or a file of the old bundle is no longer in the new one.
k=0
: >"$TX/entries" || die 2 "no room; nothing changed"
i=0
FILES=$(ls "$TX/new" | grep -c '\.path$')
while [ -f "$TX/new/$((i + 1)).path" ]; do
	i=$((i + 1))
	t=$(cat "$TX/new/$i.path")
	case "$t" in /*) ;; *) die 2 "the bundle names a relative path: $t" ;; esac
	j=$(grep -lxF -- "$t" "$TX"/old/*.path 2>/dev/null | head -n 1)
	j=${j:+$(basename "$j" .path)}
	mode=$(field "$TX/new" "$i" mode) owner=$(field "$TX/new" "$i" owner)
	if [ -f "$t" ] && [ ! -L "$t" ] && cmp -s "$TX/new/$i.content" "$t" &&
		[ "$(stat -c '%a %U:%G' "$t")" = "$(printf '%o' "0$mode") $owner" ]; then
		continue
	fi
	k=$((k + 1))
	printf '%s %s %s\n' "$k" "$i" "${j:--}" >>"$TX/entries" || die 2 "no room; nothing changed"
done
[ "$i" = "$FILES" ] || die 2 "the bundle numbers its files with a gap (file $((i + 1)) of $FILES missing); nothing changed"
for p in "$TX"/old/*.path; do
	[ -f "$p" ] || continue
	t=$(cat "$p")
	grep -qxF -- "$t" "$TX"/new/*.path 2>/dev/null && continue
	[ -e "$t" ] || continue
	k=$((k + 1))
	printf '%s - %s\n' "$k" "$(basename "$p" .path)" >>"$TX/entries" || die 2 "no room; nothing changed"
done

CHANGED=$k
if [ "$CHANGED" = 0 ]; then
	rm -f "$TX"/new/*.content
	put "$TX/journal" committing
	commit "$ID"
	log "unchanged: every file is as the bundle has it"
	exit 0
fi

# Every changed file passes its daemon's check before anything changes.
refused=0
while read -r k i j; do
	[ "$i" != - ] && has "$TX/new" "$i" check || continue
	if ! output=$(bounded sh -c "$(field "$TX/new" "$i" check)" standort-check "$TX/new/$i.content" 2>&1); then
		printf '%s\n' "$output" >&2
		log "refused $(field "$TX/new" "$i" path): the staged file fails its check"
		refused=1
	fi
done <<EOF
$(entries)
EOF
[ "$refused" = 0 ] || die 3 "refused: a staged file fails its check; nothing changed"

# Staging next to each target (same file system, so the swap is a rename); the old file stays as a hard link.
CONFIRM=""
while read -r k i j; do
	t=$(target_of "$k" "$i" "$j")
	if [ -e "$t" ]; then
		ln -f "$t" "$(old_link "$t")" && echo "$k" >>"$TX/had" || die 2 "cannot keep the old $t; nothing changed"
	fi
	[ "$i" = - ] && continue
	tmp=$(new_temp "$t")
	# Parents a file needs are created readable like /etc's own (0755), not with this script's umask.
	(umask 022 && mkdir -p "$(dirname "$t")") && cp "$TX/new/$i.content" "$tmp" && chmod "$(field "$TX/new" "$i" mode)" "$tmp" &&
		chown "$(field "$TX/new" "$i" owner)" "$tmp" || die 2 "cannot stage $t (no room?); nothing changed"
	rm -f "$TX/new/$i.content"
	if has "$TX/new" "$i" confirm; then
		c=$(field "$TX/new" "$i" confirm)
		if [ -z "$CONFIRM" ] || [ "$c" -lt "$CONFIRM" ]; then CONFIRM=$c; fi
	fi
done <<EOF
$(entries)
EOF
rm -f "$TX"/new/*.content

# The swap: from here every failure rolls the whole transaction back, and nothing interrupts it (a reboot
# or kill -9 leaves the journal for the next run or --recover).
trap - EXIT
trap '' INT TERM
put "$TX/journal" swapping || die 2 "cannot write the journal; nothing changed"
if [ -n "$CONFIRM" ]; then
	# Armed before the packet filter changes: a transaction that hangs past its window plus one step's bound
	# is stopped and rolled back by the watchdog, not left holding a ruleset that may lock the deployer out.
	put "$TX/deadline" $(($(date +%s) + CONFIRM + STEP_TIMEOUT)) && put "$TX/window" "$CONFIRM" &&
		arm $((CONFIRM + STEP_TIMEOUT)) "$ID" || rollback_or_die "the watchdog could not be armed" "$ID"
fi
while read -r k i j; do
	[ "$i" = - ] || continue
	t=$(target_of "$k" "$i" "$j")
	if has "$TX/old" "$j" remove; then run_cmd "$(field "$TX/old" "$j" remove)" >/dev/null 2>&1 || log "stopping for $t failed; removing it anyway"; fi
done <<EOF
$(entries)
EOF
swapped=0
while read -r k i j; do
	t=$(target_of "$k" "$i" "$j")
	if [ "$i" = - ]; then rm -f "$t" || swapped=1; else mv -f "$(new_temp "$t")" "$t" || swapped=1; fi
done <<EOF
$(entries)
EOF
[ "$swapped" = 0 ] || rollback_or_die "a file could not be swapped in" "$ID"

put "$TX/journal" reloading
export STANDORT_TX_START
STANDORT_TX_START=$(date +%s)
run_each new reload stop || rollback_or_die "a reload failed" "$ID"
while read -r k i j; do
	if [ "$i" = - ] && has "$TX/old" "$j" absent; then run_cmd "$(field "$TX/old" "$j" absent)" || rollback_or_die "removing $(field "$TX/old" "$j" path) failed" "$ID"; fi
done <<EOF
$(entries)
EOF

put "$TX/journal" checking
health new || rollback_or_die "the new configuration does not serve" "$ID"

if [ -n "$CONFIRM" ]; then
	put "$TX/deadline" $(($(date +%s) + CONFIRM)) && put "$TX/window" "$CONFIRM" ||
		rollback_or_die "the confirmation deadline could not be recorded" "$ID"
	# Checked: a state that cannot record the pending change (read-only after an I/O error) rolls back now.
	put "$TX/journal" pending && [ "$(get "$TX/journal")" = pending ] ||
		rollback_or_die "the pending confirmation could not be recorded" "$ID"
	arm "$CONFIRM" "$ID" || rollback_or_die "the confirmation watchdog could not be started" "$ID"
	log "applied transaction $ID ($CHANGED files); confirm within $CONFIRM s or it rolls back"
	exit 0
fi
commit "$ID"
log "applied transaction $ID ($CHANGED files)"
exit 0
