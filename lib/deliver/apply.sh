#!/bin/sh
# standort: put one configuration file in place on a host so that a bad change
# never sticks: check the staged file with the daemon's own test, keep the old
# file, swap atomically, reload, health-check, and restore the old file (and
# reload again) when the reload or the health check fails.
#
#   apply.sh --staged FILE --target PATH [--mode 0644] [--owner root:root]
#            [--check CMD] [--reload CMD] [--health CMD]
#            [--health-attempts 5] [--health-interval 1]
#            [--confirm-within SECONDS] [--backup-dir DIR] [--lock FILE]
#   apply.sh --confirm --target PATH [--backup-dir DIR] [--lock FILE]
#
# CMD strings run with `sh -c`; the caller has already put the staged file's
# path into --check. With --confirm-within the change must be confirmed by a
# second run with --confirm (over a fresh connection) within SECONDS, or the
# old file comes back by itself: a packet filter that locks out the deployer
# cannot stay.
#
# Exit codes: 0 applied, unchanged or confirmed; 2 usage or environment;
# 3 refused (check failed, nothing changed); 4 rolled back (old file active
# again); 5 rollback failed (needs an operator); 6 confirmation came too late
# (the change was already rolled back).
set -u

STAGED="" TARGET="" MODE="0644" OWNER="root:root" CHECK="" RELOAD="" HEALTH=""
HEALTH_ATTEMPTS=5 HEALTH_INTERVAL=1 CONFIRM_WITHIN="" ACTION=apply TOKEN=""
BACKUP_DIR=/var/lib/standort/backup LOCK=/run/standort-apply.lock

log() {
	printf 'standort-apply: %s\n' "$*" >&2
	if command -v logger >/dev/null 2>&1; then logger -t standort-apply -- "$*" 2>/dev/null || true; fi
}
die() { code=$1; shift; log "$*"; exit "$code"; }

while [ $# -gt 0 ]; do
	case "$1" in
		--staged) STAGED=$2; shift 2 ;;
		--target) TARGET=$2; shift 2 ;;
		--mode) MODE=$2; shift 2 ;;
		--owner) OWNER=$2; shift 2 ;;
		--check) CHECK=$2; shift 2 ;;
		--reload) RELOAD=$2; shift 2 ;;
		--health) HEALTH=$2; shift 2 ;;
		--health-attempts) HEALTH_ATTEMPTS=$2; shift 2 ;;
		--health-interval) HEALTH_INTERVAL=$2; shift 2 ;;
		--confirm-within) CONFIRM_WITHIN=$2; shift 2 ;;
		--backup-dir) BACKUP_DIR=$2; shift 2 ;;
		--lock) LOCK=$2; shift 2 ;;
		--confirm) ACTION=confirm; shift ;;
		--expire) ACTION=expire; TOKEN=$2; shift 2 ;;
		*) die 2 "unknown argument: $1" ;;
	esac
done

[ -n "$TARGET" ] || die 2 "--target is required"
case "$TARGET" in /*) ;; *) die 2 "--target must be an absolute path: $TARGET" ;; esac
case "$HEALTH_ATTEMPTS" in '' | *[!0-9]*) die 2 "--health-attempts must be a number" ;; esac

# One apply at a time per host: reloads of one daemon must not interleave.
mkdir -p "$(dirname "$LOCK")" "$BACKUP_DIR" || die 2 "cannot create $BACKUP_DIR"
chmod 700 "$BACKUP_DIR"
exec 9>"$LOCK"
if command -v flock >/dev/null 2>&1; then flock -w 300 9 || die 2 "another apply has held $LOCK for 300 s"; fi

KEY=$(printf '%s' "$TARGET" | sed 's|/|%|g')
PREV="$BACKUP_DIR/$KEY.prev"         # the file before the last change
NONE="$BACKUP_DIR/$KEY.none"         # marks that there was no file before
PENDING="$BACKUP_DIR/$KEY.pending"   # a change awaiting confirmation (holds its token)
EXPIRED="$BACKUP_DIR/$KEY.expired"   # a change rolled back for want of confirmation

# Copies $1 next to the target and renames it over the target: readers see the old or the new file, never half of one.
install_file() {
	dir=$(dirname "$TARGET")
	mkdir -p "$dir" || return 1
	tmp="$dir/.$(basename "$TARGET").standort-new.$$"
	if cp "$1" "$tmp" && chmod "$MODE" "$tmp" && chown "$OWNER" "$tmp" && mv -f "$tmp" "$TARGET"; then return 0; fi
	rm -f "$tmp"
	return 1
}

run_reload() {
	[ -z "$RELOAD" ] && return 0
	sh -c "$RELOAD"
}

# Restores the previous file (or removes a file that did not exist) and reloads again.
restore_previous() {
	if [ -e "$NONE" ]; then
		rm -f "$TARGET" || return 1
	elif [ -f "$PREV" ]; then
		install_file "$PREV" || return 1
	else
		log "no backup of $TARGET to restore"
		return 1
	fi
	run_reload
}

rollback() {
	if restore_previous; then
		die 4 "rolled back $TARGET: $1; the previous file is active again"
	fi
	die 5 "ROLLBACK FAILED for $TARGET after: $1; the host needs an operator"
}

case "$ACTION" in
	confirm)
		if [ -f "$PENDING" ]; then
			rm -f "$PENDING" "$EXPIRED"
			log "confirmed $TARGET"
			exit 0
		fi
		if [ -f "$EXPIRED" ]; then
			rm -f "$EXPIRED"
			die 6 "$TARGET was not confirmed in time and has been rolled back"
		fi
		log "nothing awaits confirmation for $TARGET"
		exit 0
		;;
	expire)
		# Only the change this watchdog was started for: a later change has its own token.
		if [ -f "$PENDING" ] && [ "$(cat "$PENDING")" = "$TOKEN" ]; then
			rm -f "$PENDING"
			if restore_previous; then
				: >"$EXPIRED"
				die 4 "rolled back $TARGET: not confirmed in time"
			fi
			die 5 "ROLLBACK FAILED for $TARGET after a missing confirmation; the host needs an operator"
		fi
		exit 0
		;;
esac

[ -n "$STAGED" ] || die 2 "--staged is required"
[ -f "$STAGED" ] || die 2 "staged file $STAGED does not exist"
# A staged file may hold a secret: whatever happens next, it does not stay behind.
trap 'rm -f "$STAGED"' EXIT
if [ -f "$PENDING" ]; then
	die 2 "refused $TARGET: the previous change still awaits confirmation"
fi

if [ -n "$CHECK" ]; then
	if ! output=$(sh -c "$CHECK" 2>&1); then
		printf '%s\n' "$output" >&2
		die 3 "refused $TARGET: the staged file fails its check ($CHECK); nothing changed"
	fi
fi

if [ -f "$TARGET" ] && cmp -s "$STAGED" "$TARGET"; then
	rm -f "$STAGED"
	log "unchanged $TARGET"
	exit 0
fi

if [ -e "$TARGET" ]; then
	cp -p "$TARGET" "$PREV" || die 2 "cannot back up $TARGET to $PREV; nothing changed"
	rm -f "$NONE"
else
	rm -f "$PREV"
	: >"$NONE"
fi
rm -f "$EXPIRED"

install_file "$STAGED" || die 2 "cannot install $TARGET; nothing changed"

if ! run_reload; then rollback "reload failed ($RELOAD)"; fi

if [ -n "$HEALTH" ]; then
	attempt=1
	until sh -c "$HEALTH" >/dev/null 2>&1; do
		if [ "$attempt" -ge "$HEALTH_ATTEMPTS" ]; then rollback "health check failed $attempt times ($HEALTH)"; fi
		attempt=$((attempt + 1))
		sleep "$HEALTH_INTERVAL"
	done
fi

if [ -n "$CONFIRM_WITHIN" ]; then
	token="$$-$(date +%s)"
	printf '%s' "$token" >"$PENDING"
	# Detached from this session and its output, so the connection can close.
	setsid sh -c 'sleep "$1"; shift; exec sh "$@"' standort-confirm-watchdog "$CONFIRM_WITHIN" "$0" \
		--expire "$token" --target "$TARGET" --mode "$MODE" --owner "$OWNER" --reload "$RELOAD" \
		--backup-dir "$BACKUP_DIR" --lock "$LOCK" </dev/null >/dev/null 2>&1 9>&- &
	rm -f "$STAGED"
	log "applied $TARGET; confirm within $CONFIRM_WITHIN s or it rolls back"
	exit 0
fi

rm -f "$STAGED"
log "applied $TARGET"
exit 0
