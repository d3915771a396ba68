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
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";
import { alertmanagerDefaultsFile } from "./alertmanager";
import { AlertReceiver, MonitoringPlan } from "./plan";
import { birdExporterDefaultsFile, monitoringFiles } from "./prometheus";
import { jobRecordFiles } from "./job-record";

export const HOST_METRICS_COMMAND = "/usr/local/lib/standort/host-metrics";
export const HOST_METRICS_SCRIPT: string = readFileSync(join(__dirname, "host-metrics.sh"), "utf8");
/** Certificates the ingress serves (lib/footprint/ingress.ts), watched for expiry on the virtualization hosts. */
export const INGRESS_CERTIFICATES = "/etc/haproxy/ingress/*.pem";

function hostMetricsFiles(args: ReadonlyArray<string>): RenderedFile[] {
  const unit = "standort-host-metrics";
  const file = (path: string, content: string, extra: Partial<RenderedFile> = {}): RenderedFile => ({
    path,
    content,
    mode: "0644",
    secret: false,
    delivery: "ssh",
    ...extra,
  });
  return [
    // The failure recorder its OnFailure= starts.
    ...jobRecordFiles(),
    file(HOST_METRICS_COMMAND, HOST_METRICS_SCRIPT, { mode: "0755", check: { command: ["sh", "-n", FILE_PLACEHOLDER] } }),
    file(
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
        "",
      ].join("\n"),
      { reload: ["systemctl", "daemon-reload"] },
    ),
    file(
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
    const args = [
      ...(host.role === "firewall" ? [...new Set(tunnels)] : []),
      ...(host.role === "virtualization" && model.virtualization.runtime === "compose" ? [`--certificates ${INGRESS_CERTIFICATES}`] : []),
    ];
    if (args.length > 0) add(host.name, hostMetricsFiles(args));
  }
  return files;
}
