/**
 * No silent failures: every periodic job records its last success (its last
 * `ExecStartPost=`) and its last failure (its `OnFailure=` unit) for node
 * exporter's textfile collector, where the alert rules read them
 * (`standort_job_last_*_timestamp_seconds`, lib/monitoring/plan.ts).
 * systemd.unit(5) `OnFailure=`, systemd.service(5) `ExecStartPost=`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";

/** The recorder on every host that runs a periodic job. */
export const JOB_RECORD_COMMAND = "/usr/local/lib/standort/job-record";
export const JOB_RECORD_SCRIPT: string = readFileSync(join(__dirname, "job-record.sh"), "utf8");
/** The template unit every job's `OnFailure=` starts, with the failed unit's name as instance. */
export const JOB_FAILED_UNIT = "standort-job-failed@.service";

/** The `[Unit]` line a job's service carries: its failure starts the recorder (`%n`: the unit's full name). */
export const ON_FAILURE_LINE = "OnFailure=standort-job-failed@%n.service";

/** The `[Service]` line that records a success: systemd runs it only after the job's own commands succeeded. */
export function recordSuccessLine(unit: string): string {
  return `ExecStartPost=${JOB_RECORD_COMMAND} success ${unit}`;
}

const JOB_FAILED_CONTENT = [
  "# standort: records a periodic job's failure for the monitoring (its OnFailure= starts this). Do not edit.",
  "[Unit]",
  "Description=standort: record the failure of %i",
  "",
  "[Service]",
  "Type=oneshot",
  `ExecStart=${JOB_RECORD_COMMAND} failure %i`,
  "",
].join("\n");

/** The recorder and the failure unit, for a host that runs periodic jobs; the recorder before the units that call it. */
export function jobRecordFiles(): RenderedFile[] {
  return [
    {
      path: JOB_RECORD_COMMAND,
      content: JOB_RECORD_SCRIPT,
      mode: "0755",
      secret: false,
      delivery: "ssh",
      check: { command: ["sh", "-n", FILE_PLACEHOLDER] },
    },
    {
      path: `/etc/systemd/system/${JOB_FAILED_UNIT}`,
      content: JOB_FAILED_CONTENT,
      mode: "0644",
      secret: false,
      delivery: "ssh",
      reload: ["systemctl", "daemon-reload"],
    },
  ];
}
