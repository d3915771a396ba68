#!/bin/sh
# standort-job-record: records the end of a periodic job's run where the
# monitoring reads it: node exporter's textfile collector
# (Prometheus text format, one file per job, written atomically so a scrape
# never reads half a file).
#
#   standort-job-record success|failure UNIT
#
# UNIT is the job's systemd unit (`standort-<key>.service`, or without the
# suffix). `success` runs as the job's last ExecStartPost= (systemd runs it
# only after the job's own commands succeeded); `failure` runs from the unit
# the job's OnFailure= starts (standort-job-failed@UNIT.service). Each call
# keeps the other timestamp from the file, so a failure never hides when the
# job last succeeded.
#
# Metrics (gauges, label job="<unit without .service>"):
#   standort_job_last_success_timestamp_seconds
#   standort_job_last_failure_timestamp_seconds
#
# Environment: STANDORT_TEXTFILE_DIR (/var/lib/prometheus/node-exporter,
# Debian's prometheus-node-exporter default).
set -eu

dir=${STANDORT_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
[ $# -eq 2 ] || { echo "usage: standort-job-record success|failure UNIT" >&2; exit 2; }
outcome=$1
job=${2%.service}
case "$outcome" in success | failure) ;; *) echo "standort-job-record: $outcome is neither success nor failure" >&2; exit 2 ;; esac
case "$job" in *[!A-Za-z0-9@._-]* | '') echo "standort-job-record: $job is not a unit name" >&2; exit 2 ;; esac

file=$dir/standort-job-$job.prom
previous() {
	sed -n "s/^$1{[^}]*} \([0-9][0-9]*\)\$/\1/p" "$file" 2>/dev/null | tail -n 1 | grep . || echo 0
}
success=$(previous standort_job_last_success_timestamp_seconds)
failure=$(previous standort_job_last_failure_timestamp_seconds)
now=$(date +%s)
if [ "$outcome" = success ]; then success=$now; else failure=$now; fi

mkdir -p "$dir"
tmp=$dir/.standort-job-$job.prom.$$
{
	echo "# HELP standort_job_last_success_timestamp_seconds End of the job's last successful run."
	echo "# TYPE standort_job_last_success_timestamp_seconds gauge"
	echo "standort_job_last_success_timestamp_seconds{job=\"$job\"} $success"
	echo "# HELP standort_job_last_failure_timestamp_seconds End of the job's last failed run."
	echo "# TYPE standort_job_last_failure_timestamp_seconds gauge"
	echo "standort_job_last_failure_timestamp_seconds{job=\"$job\"} $failure"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$file"
