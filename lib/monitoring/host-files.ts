/**
 * What the monitoring puts on a site's hosts: Prometheus and Alertmanager
 * (rules, configuration, the Alertmanager cluster flags) on both storage
 * hosts; bird_exporter's flags on the firewalls where BGP runs; and the
 * writer of what node exporter cannot see itself (WireGuard handshakes on
 * the firewalls, certificate expiry on the hosts holding certificates) with
 * its timer. Pure.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { SiteModel } from "../model/model";
import { FILE_PLACEHOLDER, RenderedFile, sshFile } from "../render/types";
import { alertmanagerDefaultsFile } from "./alertmanager";
import { AlertReceiver, MonitoringPlan } from "./plan";
import { birdExporterDefaultsFile, monitoringFiles } from "./prometheus";
import { jobRecordFiles, recordSuccessLine } from "./job-record";

export const HOST_METRICS_COMMAND = "/usr/local/lib/standort/host-metrics";
/** Where the failover scripts keep their state (`RUN_DIR` of lib/render/keepalived.ts). */
const FAILOVER_RUN_DIR = "/run/standort";
export const HOST_METRICS_SCRIPT: string = readFileSync(join(__dirname, "host-metrics.sh"), "utf8");
/** Certificates the ingress serves (lib/footprint/ingress.ts), watched for expiry on the virtualization hosts. */
export const INGRESS_CERTIFICATES = "/etc/haproxy/ingress/*.pem";

function hostMetricsFiles(args: ReadonlyArray<string>, withRecorder: boolean): RenderedFile[] {
  const unit = "standort-host-metrics";
  return [
    // The failure recorder its OnFailure= starts (a storage host running jobs has it with them already).
    ...(withRecorder ? jobRecordFiles() : []),
    sshFile(HOST_METRICS_COMMAND, HOST_METRICS_SCRIPT, { mode: "0755", check: { command: ["sh", "-n", FILE_PLACEHOLDER] } }),
    sshFile(
      `/etc/systemd/system/${unit}.service`,
      [
        "# standort: WireGuard handshakes and certificate expiry for node exporter. Do not edit.",
        "[Unit]",
        "Description=standort: metrics node exporter cannot read itself",
        "OnFailure=standort-job-failed@%n.service",
        "",
        "[Service]",
        "Type=oneshot",
        `ExecStart=${HOST_METRICS_COMMAND} ${args.join(" ")}`,
        // Its success too: a failure once recorded clears with the next good run (JobFailed compares the two).
        recordSuccessLine(`${unit}.service`),
        "",
      ].join("\n"),
      { reload: ["systemctl", "daemon-reload"] },
    ),
    sshFile(
      `/etc/systemd/system/${unit}.timer`,
      [
        "# standort: every minute. Do not edit.",
        "[Unit]",
        "Description=standort: metrics node exporter cannot read itself, every minute",
        "",
        "[Timer]",
        "OnCalendar=*-*-* *:*:00",
        "AccuracySec=5s",
        `Unit=${unit}.service`,
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
      ].join("\n"),
      {
        reload: ["sh", "-c", `systemctl daemon-reload && systemctl enable --now --quiet ${unit}.timer`],
        remove: ["systemctl", "disable", "--now", `${unit}.timer`],
      },
    ),
  ];
}

/**
 * The monitoring files per host name. `receiver`: the stack configuration's
 * `standort:alerting` (the plan passes a placeholder).
 */
export function monitoringHostFiles(model: SiteModel, plan: MonitoringPlan, receiver: AlertReceiver): Record<string, RenderedFile[]> {
  const files: Record<string, RenderedFile[]> = {};
  const add = (host: string, more: ReadonlyArray<RenderedFile>) => (files[host] = [...(files[host] ?? []), ...more]);
  const servers = monitoringFiles(plan, receiver);
  for (const s of plan.servers) add(s.host, [...servers, alertmanagerDefaultsFile(plan, s.host)]);
  for (const host of new Set(plan.targets.bird.map((t) => t.host))) add(host, [birdExporterDefaultsFile()]);
  const tunnels = plan.tunnels.map((t) => `--tunnel ${t.interface}=${t.peer}`);
  for (const host of model.hosts) {
    // Each pair's state from its failover script's state file, every minute: the script writes the metric on
    // every change, this keeps it there after a reboot or an upgrade that ran no state change.
    const pairs = model.pairs
      .filter((p) => !p.dissolved && p.members.includes(host.name))
      .map((p) => `--pair ${FAILOVER_RUN_DIR}/failover-${p.name}.state=${p.role}`);
    const args = [
      ...pairs,
      ...(host.role === "firewall" ? [...new Set(tunnels)] : []),
      ...(host.role === "virtualization" && model.virtualization.runtime === "compose" ? [`--certificates ${INGRESS_CERTIFICATES}`] : []),
    ];
    // footprintHostFiles gives every storage host the recorder when the site runs jobs under systemd.
    const recorderThere = host.role === "storage" && plan.jobs.length > 0;
    if (args.length > 0) add(host.name, hostMetricsFiles(args, !recorderThere));
  }
  return files;
}
