/**
 * Alertmanager on a site's monitoring servers: `/etc/prometheus/alertmanager.yml`
 * (Alertmanager 0.25 "Configuration" docs: route, receivers, inhibit_rules)
 * and the per-host flags that join the two Alertmanagers into one cluster
 * (`/etc/default/prometheus-alertmanager`), so each notification is sent once
 * although both Prometheus servers send every alert to both.
 * Pure: plan and receiver in, text out.
 */
import { MONITORING_PORTS } from "../render/policy";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";
import { AlertReceiver, MonitoringPlan } from "./plan";
import { checkMonitoringPlan, comment, toYaml } from "./rules";

/** Debian's path of the Alertmanager configuration (`prometheus-alertmanager` package). */
export const ALERTMANAGER_CONFIG_PATH = "/etc/prometheus/alertmanager.yml";
/** Debian's environment file of Alertmanager (its unit reads `$ARGS` from it). */
export const ALERTMANAGER_DEFAULTS_PATH = "/etc/default/prometheus-alertmanager";

/** The one receiver every alert goes to. */
export const RECEIVER_NAME = "operator";

/** The labels notifications are grouped by: one notification per alert kind and pair or service of a site. */
export const GROUP_BY: ReadonlyArray<string> = ["alertname", "site", "pair", "service"];

/** The receiver block for the stack's `standort:alerting`. */
function receiverBlock(receiver: AlertReceiver): Record<string, unknown> {
  switch (receiver.kind) {
    case "email":
      return {
        name: RECEIVER_NAME,
        email_configs: [
          // require_tls: STARTTLS or no mail; the relay must not see alerts in the clear.
          {
            to: receiver.to,
            from: receiver.from,
            smarthost: receiver.smarthost,
            ...(receiver.username !== undefined ? { auth_username: receiver.username, auth_password: receiver.password ?? "" } : {}),
            require_tls: true,
            send_resolved: true,
          },
        ],
      };
    case "webhook":
      return { name: RECEIVER_NAME, webhook_configs: [{ url: receiver.url, send_resolved: true }] };
  }
}

/**
 * Renders `/etc/prometheus/alertmanager.yml`: every alert to the `operator`
 * receiver (email with STARTTLS required, or a webhook), grouped by
 * alertname, site, pair and service; pages repeat hourly, tickets every 12 h.
 * Inhibition: while a target is down (`TargetDown`), the alerts about that
 * same target (same `job` and `host`: a BGP session its bird_exporter can no
 * longer report, a tunnel or certificate its node exporter no longer shows)
 * stay quiet; alerts without a host (a pair, a job) are never inhibited.
 * The output holds the receiver's address or URL (a webhook's token): the
 * caller delivers it as a secret. Validates the plan first (`RenderInputError`).
 */
export function renderAlertmanagerConfig(plan: MonitoringPlan, receiver: AlertReceiver): string {
  checkMonitoringPlan(plan);
  const config = {
    route: {
      receiver: RECEIVER_NAME,
      group_by: [...GROUP_BY],
      group_wait: "30s",
      group_interval: "5m",
      repeat_interval: "12h",
      routes: [{ receiver: RECEIVER_NAME, matchers: ['severity="page"'], repeat_interval: "1h" }],
    },
    receivers: [receiverBlock(receiver)],
    inhibit_rules: [
      {
        source_matchers: ['alertname="TargetDown"'],
        target_matchers: ['alertname!="TargetDown"'],
        // Both labels: a host's node exporter being down says nothing about its BGP sessions.
        equal: ["job", "host"],
      },
    ],
  };
  return (
    comment([
      `standort: Alertmanager of ${plan.site}. Rendered from the monitoring plan and standort:alerting; do not edit.`,
      "Holds the receiver's credentials: root:prometheus 0640.",
    ]) + toYaml(config)
  );
}

/**
 * `/etc/default/prometheus-alertmanager` for one monitoring server: the
 * cluster gossip listens on the server's own address (9094) and peers with
 * the other servers, so the Alertmanagers share silences and notification
 * state (Alertmanager README, "High Availability"). A site with one server
 * gets an empty listen address, which turns clustering off.
 */
export function renderAlertmanagerDefaults(plan: MonitoringPlan, host: string): string {
  checkMonitoringPlan(plan);
  const self = plan.servers.find((s) => s.host === host);
  if (!self) throw new Error(`${plan.site}: ${host} is not a monitoring server (${plan.servers.map((s) => s.host).join(", ")})`);
  const gossip = (address: string) => (address.includes(":") ? `[${address}]` : address) + `:${MONITORING_PORTS.alertmanagerCluster}`;
  const peers = plan.servers.filter((s) => s.host !== host);
  const args =
    peers.length === 0
      ? ["--cluster.listen-address="]
      : [`--cluster.listen-address=${gossip(self.address)}`, ...peers.map((p) => `--cluster.peer=${gossip(p.address)}`)];
  return comment([`standort: Alertmanager flags of ${host} (${plan.site}). Rendered; do not edit.`]) + `ARGS="${args.join(" ")}"\n`;
}

/** The defaults file as a delivered file; new flags need a restart. */
export function alertmanagerDefaultsFile(plan: MonitoringPlan, host: string): RenderedFile {
  return {
    path: ALERTMANAGER_DEFAULTS_PATH,
    content: renderAlertmanagerDefaults(plan, host),
    mode: "0644",
    secret: false,
    delivery: "ssh",
    check: { command: ["sh", "-n", FILE_PLACEHOLDER] },
    reload: ["sh", "-c", "systemctl enable --quiet prometheus-alertmanager && systemctl restart prometheus-alertmanager"],
    healthCheck: ["systemctl", "is-active", "--quiet", "prometheus-alertmanager"],
  };
}
