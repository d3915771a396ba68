#!/bin/sh
# standort-replicate: the source guard around one file-copy job. It runs the
# job's rsync command line unchanged, but only when the source is what it
# should be and the copy would not destroy the standby, and it records every
# run for monitoring. Installed as /usr/local/sbin/standort-replicate on the
# storage hosts of every site (timers and lsyncd run it).
#
#   standort-replicate --job KEY --service NAME --tree NAME --source DIR
#                      [--max-delete-percent P] [--max-delete-floor N]
#                      [--lsyncd] [--active-flag FILE]
#                      -- RSYNC [RSYNC-ARGS...]
#
# Refuses (exit 1, one line `standort-replicate: KEY: refused: REASON` on
# stderr, the state file records the failure; rsync never reaches the standby) when
#   - DIR is missing, not a directory, or empty;
#   - DIR lacks the marker DIR/.standort-tree holding `NAME/TREE` (the line
#     written once when the tree was created; an unmounted mount point, a
#     restored wrong folder or another service's tree has none or another);
#   - this site is not the service's primary: ROLES/NAME must read `primary`
#     (a stale timer on an old primary stops itself once its roles are
#     redelivered; until then the receiver refuses it);
#   - a dry run (`rsync --dry-run --stats`, through the same transport and
#     forced command) would delete more than P % of the standby's entries
#     (at least N): `--max-delete` alone is not enough, rsync deletes up to
#     the limit, keeps transferring and only then exits 25, leaving the
#     standby half-updated (rsync(1), --max-delete);
#   - the receiver refuses (its forced command prints
#     `standort-replica-receive: refused: ...`).
# The real run then gets `--max-delete=LIMIT` as a second line of defence
# against a source emptied between the dry run and the copy: rsync stops
# deleting and exits 25, which is recorded as a failure too.
#
# State: STATE/KEY.prom in Prometheus text format for node_exporter's
# textfile collector, written atomically: last success and failure times,
# the last run's result, the failure reason as a label, the files the
# receiver kept aside in the last run, and the standby's entries after the
# last successful run.
#
# --lsyncd: the continuous copy, lsyncd's rsync `binary` (through a rendered
# wrapper per job that adds the options above). lsyncd's arguments pass to
# rsync unchanged; the guard adapts to how lsyncd calls it:
#   - a run for a batch of changes names its paths in a NUL-separated list on
#     stdin (`--from0 --include-from=- --exclude=*`): the list is kept and
#     given to both the dry run and the copy;
#   - such a run lists only the changed paths, so its dry run cannot count
#     the standby: its delete limit is P % of the entries the last full run
#     left there (the timer's, or lsyncd's startup run; each batch adds its
#     created and subtracts its deleted entries), at least N;
#   - a refusal exits 75 (EX_TEMPFAIL), which the rendered lsyncd
#     configuration maps to `again`: lsyncd retries the batch after its delay
#     and keeps replicating the other trees (rsync's own code 1 would make
#     lsyncd end every sync); a failed rsync exits with rsync's code, except
#     25 (--max-delete reached), which exits 75 too.
# --active-flag FILE: only the active storage member copies. Without FILE
# this member is not (or no longer) the active one: exit 1 without touching
# the state file, which lsyncd takes as fatal; it ends, and systemd does not
# start it again while FILE is missing (ConditionPathExists=).
#
# Environment (defaults are the storage hosts' paths; the tests and the twin
# point them elsewhere): STANDORT_REPLICATION_ETC (/etc/standort/replication),
# STANDORT_REPLICATION_STATE (/var/lib/standort/replication).
set -u

etc=${STANDORT_REPLICATION_ETC:-/etc/standort/replication}
state=${STANDORT_REPLICATION_STATE:-/var/lib/standort/replication}
job= service= tree= source= percent=10 floor=20 lsyncd=no active_flag=

usage() {
	echo "usage: standort-replicate --job KEY --service NAME --tree NAME --source DIR [--max-delete-percent P] [--max-delete-floor N] [--lsyncd] [--active-flag FILE] -- RSYNC [ARGS...]" >&2
	exit 2
}

# `shift 2` past the end would end the shell with its own message; say how instead.
value() {
	[ "$1" -ge 2 ] || usage
}

while [ $# -gt 0 ]; do
	case $1 in
	--job) value $#; job=$2; shift 2 ;;
	--service) value $#; service=$2; shift 2 ;;
	--tree) value $#; tree=$2; shift 2 ;;
	--source) value $#; source=$2; shift 2 ;;
	--max-delete-percent) value $#; percent=$2; shift 2 ;;
	--max-delete-floor) value $#; floor=$2; shift 2 ;;
	--lsyncd) lsyncd=yes; shift ;;
	--active-flag) value $#; active_flag=$2; shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ -n "$job" ] && [ -n "$service" ] && [ -n "$tree" ] && [ -n "$source" ] && [ $# -ge 1 ] || usage
case $percent$floor in *[!0-9]*) usage ;; esac

rsync_bin=$1
shift
if [ -n "$active_flag" ] && [ ! -e "$active_flag" ]; then
	echo "standort-replicate: $job: stopped: $active_flag is missing: this is not the active storage member" >&2
	exit 1
fi
now=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/standort-replicate.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# The exit code of a refusal: 1, or 75 for lsyncd (retry later, see above).
refused_code=1
[ "$lsyncd" = no ] || refused_code=75
# lsyncd hands rsync a list on stdin: a batch's paths (`--include-from=-`, a run over those paths only
# instead of the whole tree), or a startup run's excludes or filters (a whole-tree run).
partial=no stdin=no
for arg in "$@"; do
	case $arg in
	--include-from=-) partial=yes stdin=yes ;;
	--exclude-from=- | --filter=.\ -) stdin=yes ;;
	esac
done
list=/dev/null
if [ "$lsyncd" = yes ] && [ "$stdin" = yes ]; then
	list=$work/list
	cat >"$list" || exit 1
fi

# Previous value of one metric of this job's state file, or 0.
previous() {
	sed -n "s/^$1{[^}]*} \([0-9][0-9]*\)\$/\1/p" "$state/$job.prom" 2>/dev/null | tail -n 1 | grep . || echo 0
}

# The standby's entries after the last successful run (0: none yet); the delete limit of a batch.
standby_entries=$(previous standort_replication_standby_entries)

# Writes the state file: $1 = 1 (success) or 0, $2 = reason (failures), $3 = files kept aside.
record() {
	ok=$1 reason=$2 kept=$3
	last_success=$(previous standort_replication_last_success_timestamp_seconds)
	last_failure=$(previous standort_replication_last_failure_timestamp_seconds)
	if [ "$ok" = 1 ]; then last_success=$now; else last_failure=$now; fi
	labels="job=\"$job\",service=\"$service\",tree=\"$tree\""
	mkdir -p "$state" || return 0
	{
		echo "# HELP standort_replication_last_success_timestamp_seconds End of the last file copy that succeeded."
		echo "# TYPE standort_replication_last_success_timestamp_seconds gauge"
		echo "standort_replication_last_success_timestamp_seconds{$labels} $last_success"
		echo "# HELP standort_replication_last_failure_timestamp_seconds End of the last file copy that failed or was refused."
		echo "# TYPE standort_replication_last_failure_timestamp_seconds gauge"
		echo "standort_replication_last_failure_timestamp_seconds{$labels} $last_failure"
		echo "# HELP standort_replication_last_run_success 1 when the last run copied, 0 when it failed or was refused."
		echo "# TYPE standort_replication_last_run_success gauge"
		echo "standort_replication_last_run_success{$labels} $ok"
		echo "# HELP standort_replication_kept_aside_files Files the receiver kept aside in the last run instead of overwriting or deleting them."
		echo "# TYPE standort_replication_kept_aside_files gauge"
		echo "standort_replication_kept_aside_files{$labels} $kept"
		echo "# HELP standort_replication_standby_entries Entries (files, folders, links) at the standby after the last successful run."
		echo "# TYPE standort_replication_standby_entries gauge"
		echo "standort_replication_standby_entries{$labels} $standby_entries"
		if [ "$ok" = 0 ]; then
			echo "# HELP standort_replication_failure_info Why the last run failed (one-line reason)."
			echo "# TYPE standort_replication_failure_info gauge"
			echo "standort_replication_failure_info{$labels,reason=\"$(printf '%s' "$reason" | tr '"\\\n' "''  ")\"} 1"
		fi
	} >"$state/.$job.prom.$$" && mv -f "$state/.$job.prom.$$" "$state/$job.prom"
}

refuse() {
	echo "standort-replicate: $job: refused: $*" >&2
	record 0 "$*" 0
	exit "$refused_code"
}

# $1 = rsync's exit code (lsyncd decides from it), then the reason.
fail() {
	code=$1
	shift
	echo "standort-replicate: $job: failed: $*" >&2
	record 0 "$*" 0
	[ "$lsyncd" = yes ] || exit 1
	[ "$code" != 25 ] || exit 75
	exit "$code"
}

# Passes a run's captured stderr on to the journal; refuses when the receiver refused.
relay() {
	cat "$work/err" >&2
	line=$(grep '^standort-replica-receive: refused: ' "$work/err" | head -n 1)
	[ -z "$line" ] || refuse "receiver ${line#standort-replica-receive: }"
}

# 1. The source is what it should be.
[ -e "$source" ] || refuse "source $source is missing"
[ -d "$source" ] || refuse "source $source is not a directory"
if [ ! -f "$source/.standort-tree" ]; then
	[ -n "$(ls -A "$source")" ] || refuse "source $source is empty"
	refuse "source $source has no marker .standort-tree (expected $service/$tree): not the tree it should be"
fi
marker=$(head -n 1 "$source/.standort-tree")
[ "$marker" = "$service/$tree" ] || refuse "source $source is marked '$marker', not $service/$tree"

# 2. This site writes the service.
role=$(head -n 1 "$etc/roles/$service" 2>/dev/null)
[ "$role" = primary ] || refuse "this site is ${role:-no} $service site (${etc}/roles/$service), not its primary"

# 3. The copy would not delete more than the set share of the standby.
# Exit 24 (files vanished while rsync listed them) is a live tree's normal state, not a failure (rsync(1), EXIT VALUES).
"$rsync_bin" --dry-run --stats "$@" <"$list" >"$work/out" 2>"$work/err"
code=$?
relay
[ "$code" = 0 ] || [ "$code" = 24 ] || fail "$code" "dry run exited $code"
count() {
	sed -n "s/^Number of $1: \([0-9,]*\).*/\1/p" "$work/out" | tr -d , | head -n 1 | grep . || echo 0
}
files=$(count files)
created=$(count "created files")
deleted=$(count "deleted files")
if [ "$partial" = yes ]; then
	# The dry run saw only the listed paths: measure against the last full count.
	standby=$standby_entries
else
	# Entries at the standby now: those the source shares with it, plus those only it has.
	standby=$((files - created + deleted))
fi
limit=$((standby * percent / 100))
[ "$limit" -ge "$floor" ] || limit=$floor
[ "$deleted" -le "$limit" ] ||
	refuse "would delete $deleted of the standby's $standby entries (limit $limit: $percent % or at least $floor)"

# 4. The copy, with rsync's own delete limit.
"$rsync_bin" --max-delete="$limit" "$@" <"$list" >"$work/out" 2>"$work/err"
code=$?
cat "$work/out"
relay
kept=$(sed -n 's/^standort-replica-receive: kept aside \([0-9][0-9]*\) .*/\1/p' "$work/err" | head -n 1)
kept=${kept:-0}
[ "$code" != 25 ] || fail 25 "rsync stopped deleting at --max-delete=$limit (exit 25): the source changed during the run"
[ "$code" = 0 ] || [ "$code" = 24 ] || fail "$code" "rsync exited $code"
# The standby's entries after the copy: the source's, or (a batch) the last count moved by this batch.
if [ "$partial" = yes ]; then
	standby_entries=$((standby_entries + created - deleted))
else
	standby_entries=$files
fi
record 1 "" "$kept"
echo "standort-replicate: $job: copied ($deleted deleted, $kept kept aside at the receiver)"
