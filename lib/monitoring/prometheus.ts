/**
 * Prometheus on a site's monitoring servers (both members of the storage
 * pair): `/etc/prometheus/prometheus.yml` (Prometheus "Configuration" docs,
 * 2.42), and the files a monitoring server gets (`monitoringFiles`).
 *
 * Both servers get the same bytes: each scrapes every target and evaluates
 * every rule on its own, so either survives the other's loss; there is no
 * `replica` external label, so both send identical alerts to both
 * Alertmanagers, and the Alertmanager cluster (gossip on 9094, see
 * alertmanager.ts) sends each notification once.
 * Pure: plan in, text out.
 */
import { MONITORING_PORTS } from "../render/policy";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";
import { AlertReceiver, MonitoringPlan, ScrapeTarget } from "./plan";
import { BIRD_EXPORTER_ARGS, RULES_PATH, SCRAPE_JOBS, checkMonitoringPlan, comment, renderAlertRules, toYaml } from "./rules";
import { ALERTMANAGER_CONFIG_PATH, renderAlertmanagerConfig } from "./alertmanager";

/** Debian's path of the Prometheus configuration (`prometheus` package, /etc/default/prometheus). */
export const PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml";

/** Prometheus's default scrape timeout (s); it must not exceed the scrape interval, or the configuration is rejected. */
const DEFAULT_SCRAPE_TIMEOUT_SECONDS = 10;

/** `address:port`, with brackets around an IPv6 address. */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One static_config per target, so each carries its own `host` label (sorted: the input order does not change the bytes). */
function staticConfigs(targets: ReadonlyArray<ScrapeTarget>): Array<{ targets: string[]; labels: { host: string } }> {
  return [...targets]
    .sort((a, b) => a.host.localeCompare(b.host, "en") || a.target.localeCompare(b.target, "en"))
    .map((t) => ({ targets: [t.target], labels: { host: t.host } }));
}

/** The monitoring servers as targets on one port. */
function serverTargets(plan: MonitoringPlan, port: number): ScrapeTarget[] {
  return plan.servers.map((s) => ({ host: s.host, target: hostPort(s.address, port) }));
}

/**
 * Renders `/etc/prometheus/prometheus.yml` for both monitoring servers of
 * the site (identical bytes). Scrape jobs: `node` (node exporter, 9100),
 * `haproxy` (HAProxy's exporter, /metrics on 8405), `bird` (bird_exporter,
 * 9324), `prometheus` and `alertmanager` (both servers, 9090 and 9093).
 * Every target carries a `host` label (the host name); `instance` stays the
 * default `address:port`. Intervals in seconds from the plan; the scrape
 * timeout is Prometheus's 10 s default or the interval when shorter.
 * Validates the plan first (`RenderInputError`).
 */
export function renderPrometheusConfig(plan: MonitoringPlan): string {
  checkMonitoringPlan(plan);
  const interval = `${plan.scrapeIntervalSeconds}s`;
  const config = {
    global: {
      scrape_interval: interval,
      scrape_timeout: `${Math.min(DEFAULT_SCRAPE_TIMEOUT_SECONDS, plan.scrapeIntervalSeconds)}s`,
      evaluation_interval: interval,
      external_labels: { site: plan.site },
    },
    alerting: {
      alertmanagers: [
        {
          static_configs: [
            {
              targets: serverTargets(plan, MONITORING_PORTS.alertmanager)
                .map((t) => t.target)
                .sort(),
            },
          ],
        },
      ],
    },
    rule_files: [RULES_PATH],
    scrape_configs: [
      // honor_labels: the textfile metrics carry a `job` label of their own (the systemd unit,
      // plan.ts METRICS); without it Prometheus would rename it to `exported_job`. node exporter's
      // own metrics have no `job` label, so they still get job="node".
      { job_name: SCRAPE_JOBS.node, honor_labels: true, static_configs: staticConfigs(plan.targets.node) },
      { job_name: SCRAPE_JOBS.haproxy, metrics_path: "/metrics", static_configs: staticConfigs(plan.targets.haproxy) },
      { job_name: SCRAPE_JOBS.bird, static_configs: staticConfigs(plan.targets.bird) },
      { job_name: SCRAPE_JOBS.prometheus, static_configs: staticConfigs(serverTargets(plan, MONITORING_PORTS.prometheus)) },
      { job_name: SCRAPE_JOBS.alertmanager, static_configs: staticConfigs(serverTargets(plan, MONITORING_PORTS.alertmanager)) },
    ].filter((job) => job.static_configs.length > 0),
  };
  return (
    comment([
      `standort: Prometheus of ${plan.site}. Rendered from the monitoring plan; do not edit.`,
      "The same file on both monitoring servers: each scrapes everything and evaluates every rule. No replica label:",
      "both send the same alerts to both Alertmanagers, whose cluster notifies once.",
    ]) + toYaml(config)
  );
}

/**
 * Health check after a reload: the daemon's own metric says whether its last
 * (re)load of the configuration worked. The reload (SIGHUP, or a start) is
 * asynchronous, hence the retries; Debian's daemons listen on every address.
 */
function reloadedOk(metric: string, port: number): string[] {
  return [
    "sh",
    "-c",
    `for i in $(seq 30); do curl -fsS --max-time 5 http://127.0.0.1:${port}/metrics 2>/dev/null | grep -qx '${metric} 1' && exit 0; sleep 1; done; ` +
      `echo "${metric} is not 1" >&2; exit 1`,
  ];
}

/** Enables the unit and reloads it (SIGHUP, Debian's ExecReload), or starts it when it is not running. */
function reloadUnit(unit: string): string[] {
  return ["sh", "-c", `systemctl enable --quiet ${unit} && systemctl reload-or-restart ${unit}`];
}

/**
 * The files of a monitoring server, in delivery order: the rules before the
 * configuration that names them, then Alertmanager's. Each with its daemon's
 * offline check:
 * - rules: `promtool check rules {file}`;
 * - prometheus.yml: `promtool check config --syntax-only {file}`: without
 *   `--syntax-only` promtool also loads the rule_files at their absolute
 *   path, which a staged copy cannot provide; the rules are checked on their own;
 * - alertmanager.yml: `amtool check-config {file}`; it carries the receiver
 *   (SMTP relay, webhook URL with its token): secret, 0640 root:prometheus
 *   (Alertmanager runs as `prometheus`).
 * The same list for both servers; `alertmanagerDefaultsFile` (alertmanager.ts)
 * is per host.
 */
export function monitoringFiles(plan: MonitoringPlan, receiver: AlertReceiver): RenderedFile[] {
  const prometheusReload = reloadUnit("prometheus");
  const prometheusHealth = reloadedOk("prometheus_config_last_reload_successful", MONITORING_PORTS.prometheus);
  return [
    {
      path: RULES_PATH,
      content: renderAlertRules(plan),
      mode: "0644",
      secret: false,
      delivery: "ssh",
      check: { command: ["promtool", "check", "rules", FILE_PLACEHOLDER] },
      reload: prometheusReload,
      healthCheck: prometheusHealth,
    },
    {
      path: PROMETHEUS_CONFIG_PATH,
      content: renderPrometheusConfig(plan),
      mode: "0644",
      secret: false,
      delivery: "ssh",
      check: { command: ["promtool", "check", "config", "--syntax-only", FILE_PLACEHOLDER] },
      reload: prometheusReload,
      healthCheck: prometheusHealth,
    },
    {
      path: ALERTMANAGER_CONFIG_PATH,
      content: renderAlertmanagerConfig(plan, receiver),
      mode: "0640",
      owner: "root:prometheus",
      secret: true,
      delivery: "ssh",
      check: { command: ["amtool", "check-config", FILE_PLACEHOLDER] },
      reload: reloadUnit("prometheus-alertmanager"),
      healthCheck: reloadedOk("alertmanager_config_last_reload_successful", MONITORING_PORTS.alertmanager),
    },
  ];
}

/** Debian's environment file of bird_exporter (its unit reads `$ARGS` from it). */
export const BIRD_EXPORTER_DEFAULTS_PATH = "/etc/default/prometheus-bird-exporter";

/**
 * `/etc/default/prometheus-bird-exporter` for a host running BIRD 2 with BGP
 * sessions: `ARGS="-bird.v2 -format.new"` (see `BIRD_EXPORTER_ARGS`, rules.ts).
 * New flags need a restart.
 */
export function birdExporterDefaultsFile(): RenderedFile {
  return {
    path: BIRD_EXPORTER_DEFAULTS_PATH,
    content:
      comment([
        "standort: bird_exporter flags. Rendered; do not edit.",
        "-bird.v2: BIRD 2 (one daemon and socket for IPv4 and IPv6); -format.new: the metric names the alert rules read.",
      ]) + `ARGS="${BIRD_EXPORTER_ARGS.join(" ")}"\n`,
    mode: "0644",
    secret: false,
    delivery: "ssh",
    check: { command: ["sh", "-n", FILE_PLACEHOLDER] },
    reload: ["sh", "-c", "systemctl enable --quiet prometheus-bird-exporter && systemctl restart prometheus-bird-exporter"],
    healthCheck: ["systemctl", "is-active", "--quiet", "prometheus-bird-exporter"],
  };
}
