#!/bin/sh
# standort-replica-receive: the only command the partner site's replication
# key may run on a storage host (sshd forced command, `command=` in
# authorized_keys; sshd puts what the client asked for into
# SSH_ORIGINAL_COMMAND, see sshd(8) and authorized_keys in sshd(8)).
# Installed as /usr/local/sbin/standort-replica-receive.
#
# It accepts an rsync push into one replicated tree, and only while this site
# is that service's standby: an old primary that comes back with its old
# timers finds the new primary refusing it, so it can neither overwrite nor
# delete the new primary's data. Then it hands the push to rrsync(1) confined
# to the tree's parent folder, write-only (-wo: no reads of this site's data),
# with rsync's own backup mode added last so the client cannot turn it off:
# every file the push would overwrite or delete is moved to
#   PARENT/.standort-kept-aside/SERVICE/TREE/<UTC time>/
# (outside the tree, so services never see it and it is never copied back)
# instead of being lost (rsync(1), --backup, --backup-dir). That is how an
# old primary's writes that never replicated survive the first copy from the
# new primary: kept aside, counted on stderr (the sender's journal and state
# file) and in this host's state file, never dropped. Kept-aside runs older
# than KEEP_DAYS days are removed, or the standby's disk would fill with old
# versions of every file the primary rewrites.
#
# Refuses (exit 1, one line `standort-replica-receive: refused: REASON` on
# stderr, recorded in the state file) anything but `rsync --server` (rrsync
# then refuses reads and options outside its list), a destination that is not
# one of the trees listed in ETC/trees, and any push while ETC/roles/SERVICE
# does not read `standby`.
#
# ETC/trees: one line per replicated tree, `SERVICE TREE PATH`.
# State: STATE/receive-SERVICE-TREE.prom (Prometheus text format).
# Environment (defaults are the storage hosts' paths; the tests and the twin
# point them elsewhere): STANDORT_REPLICATION_ETC (/etc/standort/replication),
# STANDORT_REPLICATION_STATE (/var/lib/standort/replication).
set -u

etc=${STANDORT_REPLICATION_ETC:-/etc/standort/replication}
state=${STANDORT_REPLICATION_STATE:-/var/lib/standort/replication}
KEEP_DAYS=14
# How long a push waits for the one before it into the same tree (rsync's --timeout in the senders).
LOCK_WAIT_SECONDS=300
now=$(date +%s)
command=${SSH_ORIGINAL_COMMAND:-}
service= tree=

# Writes the state file: $1 = 1 (received) or 0, $2 = reason, $3 = files kept aside.
record() {
	[ -n "$service" ] || return 0
	file="$state/receive-$service-$tree.prom"
	labels="service=\"$service\",tree=\"$tree\""
	mkdir -p "$state" || return 0
	{
		echo "# HELP standort_replica_receive_last_run_success 1 when the last push was received, 0 when it was refused or failed."
		echo "# TYPE standort_replica_receive_last_run_success gauge"
		echo "standort_replica_receive_last_run_success{$labels} $1"
		echo "# HELP standort_replica_receive_last_run_timestamp_seconds End of the last push."
		echo "# TYPE standort_replica_receive_last_run_timestamp_seconds gauge"
		echo "standort_replica_receive_last_run_timestamp_seconds{$labels} $now"
		echo "# HELP standort_replica_receive_kept_aside_files Files the last push would have overwritten or deleted, kept aside."
		echo "# TYPE standort_replica_receive_kept_aside_files gauge"
		echo "standort_replica_receive_kept_aside_files{$labels} $3"
		if [ "$1" = 0 ]; then
			echo "# HELP standort_replica_receive_failure_info Why the last push was refused or failed."
			echo "# TYPE standort_replica_receive_failure_info gauge"
			echo "standort_replica_receive_failure_info{$labels,reason=\"$(printf '%s' "$2" | tr '"\\\n' "''  ")\"} 1"
		fi
	} >"$file.$$" && mv -f "$file.$$" "$file"
}

refuse() {
	echo "standort-replica-receive: refused: $*" >&2
	record 0 "$*" 0
	exit 1
}

case $command in
"rsync --server "*" . "*) ;;
*) refuse "not an rsync push: ${command:-no command}" ;;
esac

# `rsync --server OPTIONS . DEST`: options only before the dot, exactly one destination after it. rsync writes
# into its first destination, so a second word would let a push name an admitted tree last and write elsewhere.
options=${command%% . *}
dest=${command#* . }
case $dest in
"" | *" "* | *"	"*) refuse "a push names exactly one destination: ${dest:-none}" ;;
esac
for word in ${options#rsync --server}; do
	case $word in
	-*) ;;
	*) refuse "only options before the source dot, got $word" ;;
	esac
done
dest=${dest%/}
while read -r s t p; do
	[ "$p" = "$dest" ] || continue
	service=$s tree=$t
	break
done <"$etc/trees"
[ -n "$service" ] || refuse "$dest is not a tree this site replicates"

role=$(head -n 1 "$etc/roles/$service" 2>/dev/null)
[ "$role" = standby ] ||
	refuse "this site is the ${role:-unknown} $service site, not its standby: a returning old primary must not write here"

parent=${dest%/*}
[ -n "$parent" ] || refuse "$dest has no parent folder to confine the push to"
base="$parent/.standort-kept-aside/$service/$tree"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ ! -e "$base/$stamp" ] || stamp="$stamp-$$"
# Only root reads what was kept aside; rrsync creates the rest below it.
mkdir -p "$base" && chmod 0700 "$parent/.standort-kept-aside" || refuse "cannot create $base"

# Backup options after the client's own, so they win; a leading slash is the
# root of rrsync's restricted folder (rrsync(1)).
SSH_ORIGINAL_COMMAND="${command%% . *} -b --backup-dir=/.standort-kept-aside/$service/$tree/$stamp . ${command#* . }"
export SSH_ORIGINAL_COMMAND
# One push at a time per tree, each waiting for the one before: the continuous copy's batches (lsyncd) and
# the timer's full pass reach the same tree, while pushes into the service's other trees run beside them.
# rrsync's own lock (-no-lock turns it off) covers the whole parent folder and refuses instead of waiting.
mkdir -p "$state" && exec 9>"$state/receive-$service-$tree.lock" && flock -w "$LOCK_WAIT_SECONDS" 9 ||
	refuse "another push into $service/$tree still runs after ${LOCK_WAIT_SECONDS}s"
/usr/bin/rrsync -wo -no-lock -absolute "$parent"
code=$?

kept=0
if [ -d "$base/$stamp" ]; then
	kept=$(find "$base/$stamp" ! -type d | wc -l | tr -d ' ')
	# A run with nothing to keep (every dry run, most copies) leaves no folder behind.
	[ "$kept" != 0 ] || rm -rf "$base/$stamp"
fi
find "$base" -mindepth 1 -maxdepth 1 -type d -mtime +"$KEEP_DAYS" -exec rm -rf {} +
[ "$kept" = 0 ] || echo "standort-replica-receive: kept aside $kept file(s) of $service/$tree in $base/$stamp" >&2
if [ "$code" = 0 ]; then
	record 1 "" "$kept"
else
	record 0 "rsync exited $code" "$kept"
fi
exit "$code"
