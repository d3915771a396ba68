/**
 * The site's alert rules (`/etc/prometheus/rules/standort.rules.yml`): one
 * rule group, `standort-<site>`, generated from the monitoring plan so that
 * every watched job, pair, BGP session and tunnel has a rule instance of its
 * own, with its threshold written into the expression (no recording rules, no
 * lookup metrics: what a rule checks is readable in the file).
 *
 * Rule file format: Prometheus "Alerting rules" and "Recording rules" docs
 * (rule_files, groups[].rules[] with alert, expr, for, labels, annotations).
 * Annotation templates use Go text/template with `$labels` (the series labels
 * of the expression's result, not the rule's own labels) — Prometheus
 * "Templating" docs. Every instance is covered by `promtool test rules`
 * cases (rule-tests.ts).
 *
 * Also the one place that names the exporters' metrics the rules read
 * (bird_exporter, HAProxy's built-in exporter), the alert catalogue
 * (`ALERTS`) and the plan's validation shared by all monitoring renderers.
 * Pure: plan in, text out.
 */
import { stringify } from "yaml";
import { ProblemCollector } from "../render/errors";
import { METRICS, MonitoringPlan, WatchedBgpSession, WatchedJob, WatchedPair, WatchedTunnel } from "./plan";

/** Where the rules file lives on the monitoring servers; prometheus.yml's `rule_files` names it. */
export const RULES_DIR = "/etc/prometheus/rules";
export const RULES_PATH = `${RULES_DIR}/standort.rules.yml`;

/** Scrape job names (the `job` label of `up` and of every exporter metric but the textfile ones, see prometheus.ts). */
export const SCRAPE_JOBS = {
  node: "node",
  haproxy: "haproxy",
  bird: "bird",
  prometheus: "prometheus",
  alertmanager: "alertmanager",
} as const;

/**
 * bird_exporter (Debian `prometheus-bird-exporter` 1.4.1, github.com/czerwonk/bird_exporter):
 * the flags it must run with on a BIRD 2 host, for `/etc/default/prometheus-bird-exporter`
 * (`ARGS="-bird.v2 -format.new"`; Debian's default is `ARGS="-format.new"`).
 * `-bird.v2`: BIRD 2 serves IPv4 and IPv6 from one daemon and socket (`/run/bird/bird.ctl`,
 * the Debian default of `-bird.socket`); without it the exporter also queries a bird6 socket
 * that does not exist. `-format.new`: the metric names below (the default since 1.3, stated so
 * a changed default cannot rename them).
 */
export const BIRD_EXPORTER_ARGS: ReadonlyArray<string> = ["-bird.v2", "-format.new"];

/**
 * The bird_exporter metric the BGP rule reads (new format, metrics/generic_exporter.go):
 * 1 while the protocol's state is `up` (BGP: Established), else 0. Labels: `name` (the BIRD
 * protocol name), `proto` (`BGP`), `ip_version` (one series per channel with `-bird.v2`),
 * `import_filter`, `export_filter`, `state` (BIRD's state text: a change starts a new series).
 */
export const BIRD_PROTOCOL_UP = "bird_protocol_up";

/**
 * HAProxy's built-in exporter (promex, HAProxy 2.6 addons/promex; `http-request use-service
 * prometheus-exporter`): per backend (label `proxy`) the number of usable active and backup
 * servers, and per server (`proxy`, `server`, `state`) its status. HAProxy's internal proxies
 * (uuid <= 0: GLOBAL, the http-client) are not exported at all; backends without servers (the
 * ingress's 421 backend) are, with 0 and 0, so the rule only counts backends that have a server.
 */
export const HAPROXY_METRICS = {
  backendActiveServers: "haproxy_backend_active_servers",
  backendBackupServers: "haproxy_backend_backup_servers",
  serverStatus: "haproxy_server_status",
} as const;

/** Seconds without a WireGuard handshake before the tunnel alert fires: WireGuard rekeys every 120 s while packets flow (REKEY_AFTER_TIME), and the rendered PersistentKeepalive keeps them flowing; one missed rekey plus a minute of grace. */
export const TUNNEL_HANDSHAKE_MAX_AGE_SECONDS = 180;

/** How an alert is delivered: `page` wakes someone up, `ticket` is for the next working day. */
export type Severity = "page" | "ticket";

export type AlertName =
  | "ReplicationStale"
  | "BackupStale"
  | "JobFailed"
  | "PairNotOneActive"
  | "BgpSessionDown"
  | "TunnelHandshakeStale"
  | "BackendPoolEmpty"
  | "CertificateExpiring"
  | "TargetDown";

/** One alert of the catalogue: what it means and what to do (README table, rule annotations, tests). */
export interface AlertInfo {
  readonly name: AlertName;
  readonly severity: Severity;
  /** One line: what is wrong when it fires. */
  readonly meaning: string;
  /** One line: what the operator does. */
  readonly action: string;
}

/** Every alert the rules raise, in rule order. */
export const ALERTS: ReadonlyArray<AlertInfo> = [
  {
    name: "ReplicationStale",
    severity: "page",
    meaning:
      "A replication job has not succeeded within its service's RPO (or never has): a failover now would lose more data than the service allows.",
    action:
      "On the active storage host read `journalctl -u <job>` and the job's state file; check the tunnel to the partner site and its receiver; once fixed, `systemctl start <job>`.",
  },
  {
    name: "BackupStale",
    severity: "ticket",
    meaning: "A backup job's last success is older than 26 h (or it never succeeded): the next restore would be older than a day.",
    action:
      "Read `journalctl -u <job>` on the storage hosts, fix the cause (space, credentials, reachability of the target), then `systemctl start <job>`.",
  },
  {
    name: "JobFailed",
    severity: "ticket",
    meaning:
      "A job's newest run failed: its last failure, on any host, is newer than its last success on every host (or it never succeeded).",
    action: "Read `journalctl -u <job>` on the host that ran it last; the alert clears with the job's next success.",
  },
  {
    name: "PairNotOneActive",
    severity: "page",
    meaning:
      "A keepalived pair has no active member or more than one (split brain); a member whose node exporter does not answer is not counted as active.",
    action:
      "Read `journalctl -u keepalived` on both members and check VRRP between them; with two active, fence one (power it off) before anything else.",
  },
  {
    name: "BgpSessionDown",
    severity: "page",
    meaning: "A BGP session of a site router is not established for a minute, or bird_exporter reports no such protocol.",
    action:
      "Run `birdc show protocols all <protocol>` on the host; check the peer's reachability, the session password and the upstream's side.",
  },
  {
    name: "TunnelHandshakeStale",
    severity: "page",
    meaning: `A site-to-site WireGuard tunnel has had no handshake for over ${TUNNEL_HANDSHAKE_MAX_AGE_SECONDS} s (it rekeys every 120 s), or never had one.`,
    action:
      "Run `wg show <interface>` on the firewall; check the peer site's firewall, its endpoint address and the tunnel's UDP port in both packet filters.",
  },
  {
    name: "BackendPoolEmpty",
    severity: "page",
    meaning: "An HAProxy backend with servers has none usable (all down or in maintenance): every request for it fails.",
    action:
      "Run `echo 'show servers state <backend>' | socat stdio /run/haproxy/admin.sock` on the host; fix the servers or the services behind them.",
  },
  {
    name: "CertificateExpiring",
    severity: "ticket",
    meaning: "A certificate's notAfter is closer than the site's warning period.",
    action: "Renew the certificate (or find why its renewal failed) and deliver it; the alert clears once the new file is in place.",
  },
  {
    name: "TargetDown",
    severity: "ticket",
    meaning: "Prometheus has not been able to scrape a target for 2 minutes: the exporter or its host is down, or the scrape is blocked.",
    action:
      "Check the host, `systemctl status` of the exporter and that the packet filter admits the monitoring servers; the alerts that read this target are inhibited meanwhile.",
  },
];

/** The catalogue entry of an alert. */
export function alertInfo(name: AlertName): AlertInfo {
  const info = ALERTS.find((a) => a.name === name);
  if (!info) throw new Error(`unknown alert ${name}`);
  return info;
}

/**
 * One alerting rule instance. `expr` is PromQL; `forSeconds` how long it
 * must match before it fires (absent: at the first evaluation that matches);
 * `labels` are the rule's own labels (`severity`, and the instance's identity
 * where the expression's result does not carry it); annotations are
 * templates that read only `$labels` of the expression's result.
 */
export interface AlertRule {
  readonly alert: AlertName;
  /** Which instance (not written to the file): `job:<job>`, `pair:<pair>`, `bgp:<host>/<protocol>`, `tunnel:<host>/<interface>/<peer>`, or the alert name of a site-wide rule. */
  readonly key: string;
  readonly expr: string;
  readonly forSeconds?: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** Label values and names the rules write into PromQL, YAML and templates: no quotes, braces or spaces to escape. */
const SAFE_VALUE = /^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$/;

/**
 * Checks what the monitoring renderers rely on and throws `RenderInputError`
 * (site, host `monitoring`, field, rule) listing every problem: a value that
 * would need escaping in PromQL or a template, a scrape interval Prometheus
 * rejects, duplicates that would make two identical rules, a watched host
 * whose exporter is not scraped.
 */
export function checkMonitoringPlan(plan: MonitoringPlan): void {
  const problems = new ProblemCollector(plan.site, "monitoring");
  const safe = (field: string, value: string) => {
    if (!SAFE_VALUE.test(value)) problems.add(field, `${JSON.stringify(value)} must match ${SAFE_VALUE.source}`);
  };
  const unique = (field: string, keys: ReadonlyArray<string>) => {
    const seen = new Set<string>();
    keys.forEach((k, i) => {
      if (seen.has(k)) problems.add(`${field}[${i}]`, `${k} is listed twice`);
      seen.add(k);
    });
  };
  safe("site", plan.site);
  if (!Number.isInteger(plan.scrapeIntervalSeconds) || plan.scrapeIntervalSeconds < 1 || plan.scrapeIntervalSeconds > 3600) {
    problems.add("scrapeIntervalSeconds", `${plan.scrapeIntervalSeconds} must be a whole number of seconds from 1 to 3600`);
  }
  if (!Number.isInteger(plan.certificateWarningDays) || plan.certificateWarningDays < 1) {
    problems.add("certificateWarningDays", `${plan.certificateWarningDays} must be a whole number of days, at least 1`);
  }
  if (plan.servers.length === 0) problems.add("servers", "at least one monitoring server is needed");
  plan.servers.forEach((s, i) => {
    safe(`servers[${i}].host`, s.host);
    safe(`servers[${i}].address`, s.address);
  });
  unique(
    "servers",
    plan.servers.map((s) => s.host),
  );
  for (const kind of ["node", "haproxy", "bird"] as const) {
    plan.targets[kind].forEach((t, i) => {
      safe(`targets.${kind}[${i}].host`, t.host);
      if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/.test(t.target)) {
        problems.add(`targets.${kind}[${i}].target`, `${JSON.stringify(t.target)} must be address:port`);
      }
    });
    unique(
      `targets.${kind}`,
      plan.targets[kind].map((t) => t.target),
    );
  }
  plan.jobs.forEach((j, i) => {
    safe(`jobs[${i}].job`, j.job);
    if (j.service !== "") safe(`jobs[${i}].service`, j.service);
    j.hosts.forEach((h, k) => safe(`jobs[${i}].hosts[${k}]`, h));
    if (!Number.isInteger(j.maxAgeSeconds) || j.maxAgeSeconds < 1) {
      problems.add(`jobs[${i}].maxAgeSeconds`, `${j.maxAgeSeconds} must be a whole number of seconds, at least 1`);
    }
  });
  unique(
    "jobs",
    plan.jobs.map((j) => j.job),
  );
  plan.pairs.forEach((p, i) => {
    safe(`pairs[${i}].pair`, p.pair);
    p.members.forEach((m, k) => safe(`pairs[${i}].members[${k}]`, m));
    if (p.members.length === 0) problems.add(`pairs[${i}].members`, "a pair needs members");
  });
  unique(
    "pairs",
    plan.pairs.map((p) => p.pair),
  );
  plan.bgpSessions.forEach((s, i) => {
    safe(`bgpSessions[${i}].host`, s.host);
    safe(`bgpSessions[${i}].protocol`, s.protocol);
  });
  unique(
    "bgpSessions",
    plan.bgpSessions.map((s) => `${s.host}/${s.protocol}`),
  );
  plan.tunnels.forEach((t, i) => {
    safe(`tunnels[${i}].host`, t.host);
    safe(`tunnels[${i}].interface`, t.interface);
    safe(`tunnels[${i}].peer`, t.peer);
  });
  unique(
    "tunnels",
    plan.tunnels.map((t) => `${t.host}/${t.interface}/${t.peer}`),
  );
  // A watched host without its exporter's target would alert forever (or never): refuse it.
  const scraped = (kind: "node" | "bird") => new Set(plan.targets[kind].map((t) => t.host));
  const node = scraped("node");
  const missing = (field: string, host: string, kind: "node" | "bird", set: Set<string>) => {
    if (!set.has(host)) problems.add(field, `${host} has no ${kind} target (targets.${kind}): its metrics would never arrive`);
  };
  plan.jobs.forEach((j, i) => j.hosts.forEach((h, k) => missing(`jobs[${i}].hosts[${k}]`, h, "node", node)));
  plan.pairs.forEach((p, i) => p.members.forEach((m, k) => missing(`pairs[${i}].members[${k}]`, m, "node", node)));
  plan.tunnels.forEach((t, i) => missing(`tunnels[${i}].host`, t.host, "node", node));
  const bird = scraped("bird");
  plan.bgpSessions.forEach((s, i) => missing(`bgpSessions[${i}].host`, s.host, "bird", bird));
  problems.throwIfAny();
}

/** A PromQL selector; values are checked safe, so plain double quotes need no escaping. */
export function selector(metric: string, labels: Readonly<Record<string, string>>): string {
  const matchers = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return `${metric}{${matchers.join(",")}}`;
}

/** A Prometheus duration for whole seconds, in the largest unit that divides them (`26h`, `15m`, `90s`). */
export function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** `$labels.name` as a template action. */
const l = (name: string) => `{{ $labels.${name} }}`;

/**
 * How long an age or absence rule waits before firing: two scrape intervals.
 * A failed scrape marks all of a target's series stale at once, so `absent()`
 * turns true for one evaluation; so it does right after Prometheus starts,
 * before the first scrape. Neither may page. Small against any RPO.
 */
export function graceSeconds(plan: MonitoringPlan): number {
  return 2 * plan.scrapeIntervalSeconds;
}

/** How far back an age rule looks for a job's freshest report: two grace periods (a missed scrape or two). */
export function lookback(plan: MonitoringPlan): string {
  return duration(2 * graceSeconds(plan));
}

/** Job staleness (replication: RPO, page; backup: 26 h, ticket): fires when the age reaches the limit. */
function jobStaleRule(plan: MonitoringPlan, job: WatchedJob): AlertRule {
  const alert = job.kind === "replication" ? "ReplicationStale" : "BackupStale";
  const info = alertInfo(alert);
  const metric = selector(METRICS.jobLastSuccess, { job: job.job });
  const limit = duration(job.maxAgeSeconds);
  const owner = job.service ? `service ${job.service}` : "the site";
  return {
    alert,
    key: `job:${job.job}`,
    // `max by (job)`: the job runs on the active member of a pair; both members' files are
    // scraped and the freshest success counts. `absent()` carries the `job` matcher as its
    // label, so "never succeeded anywhere" fires with the same labels as "too old".
    // The age over the last two grace periods (`max_over_time`: one failed scrape does not make an old
    // member's file the freshest), compared with the limit less the grace, held for the grace: it fires
    // when the age reaches the limit, within one evaluation interval, and a success that arrives in
    // between clears it before it pages.
    expr: `time() - max by (job) (max_over_time(${metric}[${lookback(plan)}])) > ${job.maxAgeSeconds - graceSeconds(plan)}\nor\nabsent_over_time(${metric}[${lookback(plan)}])`,
    forSeconds: graceSeconds(plan),
    // service and kind as rule labels: the expression's result carries only `job`, and Alertmanager
    // groups by service. `job` too: promtool's duplicate-rules lint tells rules apart by name and labels.
    labels: { severity: info.severity, job: job.job, ...(job.service ? { service: job.service } : {}), kind: job.kind },
    annotations: {
      summary: `${job.kind === "replication" ? "Replication" : "Backup"} ${l("job")} of ${owner} older than ${limit}`,
      description:
        `${l("job")} (${owner}, on ${job.hosts.join(" or ")}) has not succeeded for more than ${limit}` +
        `${job.kind === "replication" ? " (the service's RPO)" : ""}, or never has. ${info.action.replace(/<job>/g, l("job"))}`,
    },
  };
}

function jobFailedRule(): AlertRule {
  const info = alertInfo("JobFailed");
  // Per job, not per host: a pair runs its jobs on the active member only, and a member that
  // failed before a failover keeps its old failure in its state file; what counts is whether
  // the newest run anywhere failed. kind and service ride along (the same for every host).
  const failed = `max by (job, kind, service) (${METRICS.jobLastFailure})`;
  const succeeded = `max by (job, kind, service) (${METRICS.jobLastSuccess})`;
  return {
    alert: "JobFailed",
    key: "JobFailed",
    expr: `${failed} > ${succeeded}\nor\n${failed} unless on (job) ${succeeded}`,
    labels: { severity: info.severity },
    annotations: {
      summary: `Job ${l("job")} failed`,
      description: `The newest run of ${l("job")} failed after its last success, or it never succeeded. ${info.action.replace(/<job>/g, l("job"))}`,
    },
  };
}

function pairRule(pair: WatchedPair): AlertRule {
  const info = alertInfo("PairNotOneActive");
  const master = selector(METRICS.vrrpMaster, { job: SCRAPE_JOBS.node, pair: pair.pair });
  const up = selector("up", { job: SCRAPE_JOBS.node });
  return {
    alert: "PairNotOneActive",
    key: `pair:${pair.pair}`,
    // A member counts as active only while its node exporter answers: its last reported MASTER
    // would otherwise linger until staleness. `or vector(0)`: count() of nothing is empty, not 0.
    expr: `(\n  count(${master} == 1 and on (instance) ${up} == 1)\n  or\n  vector(0)\n) != 1`,
    // keepalived moves the role within a few advert intervals; a flap is not worth a page.
    forSeconds: 30,
    labels: { severity: info.severity, pair: pair.pair },
    annotations: {
      summary: `Pair ${pair.pair} does not have exactly one active member`,
      description: `The ${pair.pair} pair (${pair.members.join(", ")}) has no active member or more than one. ${info.action}`,
    },
  };
}

function bgpRule(session: WatchedBgpSession): AlertRule {
  const info = alertInfo("BgpSessionDown");
  const up = selector(BIRD_PROTOCOL_UP, { job: SCRAPE_JOBS.bird, host: session.host, name: session.protocol });
  return {
    alert: "BgpSessionDown",
    key: `bgp:${session.host}/${session.protocol}`,
    // `min by`: one series per channel (IPv4, IPv6), any of them down counts; the `by` labels
    // are absent()'s labels too, so both branches alert with the same labels.
    expr: `min by (job, host, name) (${up}) == 0\nor\nabsent(${up})`,
    // BIRD reconnects by itself within its connect retry time; a minute rides out a reset.
    forSeconds: 60,
    // The instance's identity as rule labels too (the same values the result carries): promtool's
    // duplicate-rules lint tells rules apart by name and labels.
    labels: { severity: info.severity, host: session.host, name: session.protocol },
    annotations: {
      summary: `BGP session ${l("name")} on ${l("host")} is down`,
      description: `BIRD protocol ${l("name")} on ${l("host")} is not up (or not reported). ${info.action.replace(/<protocol>/g, l("name"))}`,
    },
  };
}

function tunnelRule(plan: MonitoringPlan, tunnel: WatchedTunnel): AlertRule {
  const info = alertInfo("TunnelHandshakeStale");
  // Any member of the firewall pair: the tunnel runs on the active one only (its failover script starts it).
  const handshake = selector(METRICS.wireguardHandshake, {
    job: SCRAPE_JOBS.node,
    interface: tunnel.interface,
    peer: tunnel.peer,
  });
  return {
    alert: "TunnelHandshakeStale",
    key: `tunnel:${tunnel.interface}/${tunnel.peer}`,
    // The metric is 0 before the first handshake: the age is then "since 1970" and fires.
    // Grace as for the jobs: a failed scrape must not page.
    expr: `time() - max by (job, interface, peer) (${handshake}) > ${TUNNEL_HANDSHAKE_MAX_AGE_SECONDS}\nor\nabsent(${handshake})`,
    forSeconds: graceSeconds(plan),
    // Identity as rule labels, as for BGP sessions (duplicate-rules lint).
    labels: { severity: info.severity, interface: tunnel.interface, peer: tunnel.peer },
    annotations: {
      summary: `Tunnel ${l("interface")} to ${l("peer")} has no recent handshake`,
      description: `WireGuard ${l("interface")} on the active firewall has had no handshake with ${l("peer")} for over ${TUNNEL_HANDSHAKE_MAX_AGE_SECONDS}s, or never. ${info.action.replace(/<interface>/g, l("interface"))}`,
    },
  };
}

function backendRule(): AlertRule {
  const info = alertInfo("BackendPoolEmpty");
  const job = { job: SCRAPE_JOBS.haproxy };
  return {
    alert: "BackendPoolEmpty",
    key: "BackendPoolEmpty",
    // The last term keeps backends that have at least one server: a backend without servers
    // (the ingress's 421 answer) reports 0 and 0 by design.
    expr:
      `${selector(HAPROXY_METRICS.backendActiveServers, job)} == 0\n` +
      `and on (instance, proxy) ${selector(HAPROXY_METRICS.backendBackupServers, job)} == 0\n` +
      `and on (instance, proxy) group by (instance, proxy) (${selector(HAPROXY_METRICS.serverStatus, job)})`,
    // Health checks take a few intervals (inter 2s, fall 3) to mark servers down and up again.
    forSeconds: 30,
    labels: { severity: info.severity },
    annotations: {
      summary: `HAProxy backend ${l("proxy")} on ${l("host")} has no usable server`,
      description: `Every server of backend ${l("proxy")} on ${l("host")} is down or in maintenance. ${info.action.replace(/<backend>/g, l("proxy"))}`,
    },
  };
}

function certificateRule(days: number): AlertRule {
  const info = alertInfo("CertificateExpiring");
  return {
    alert: "CertificateExpiring",
    key: "CertificateExpiring",
    expr: `${METRICS.certificateExpiry} - time() < ${days * 86400}`,
    labels: { severity: info.severity },
    annotations: {
      summary: `Certificate ${l("path")} on ${l("host")} expires within ${days} days`,
      description: `${l("path")} on ${l("host")} expires in less than ${days} days. ${info.action}`,
    },
  };
}

function targetDownRule(): AlertRule {
  const info = alertInfo("TargetDown");
  return {
    alert: "TargetDown",
    key: "TargetDown",
    expr: "up == 0",
    // A restart of an exporter or a reboot takes a scrape or two.
    forSeconds: 120,
    labels: { severity: info.severity },
    annotations: {
      summary: `${l("job")} on ${l("host")} cannot be scraped`,
      description: `Prometheus cannot scrape ${l("job")} at ${l("instance")} (${l("host")}). ${info.action}`,
    },
  };
}

/** Every rule instance of the plan, in the order of `ALERTS`, each kind in plan order. */
export function alertRules(plan: MonitoringPlan): AlertRule[] {
  checkMonitoringPlan(plan);
  const byKind = (kind: WatchedJob["kind"]) => plan.jobs.filter((j) => j.kind === kind).map((j) => jobStaleRule(plan, j));
  return [
    ...byKind("replication"),
    ...byKind("backup"),
    jobFailedRule(),
    ...plan.pairs.map(pairRule),
    ...plan.bgpSessions.map(bgpRule),
    ...plan.tunnels.map((x) => tunnelRule(plan, x)),
    backendRule(),
    certificateRule(plan.certificateWarningDays),
    targetDownRule(),
  ];
}

/** YAML as Prometheus (Go yaml.v2, YAML 1.1) reads it: 1.1 quoting (`on`, `no` stay strings), no line folding. */
export function toYaml(value: unknown): string {
  return stringify(value, { version: "1.1", lineWidth: 0 });
}

/** A `# ` comment block. */
export function comment(lines: ReadonlyArray<string>): string {
  return lines.map((line) => (line ? `# ${line}` : "#")).join("\n") + "\n";
}

/**
 * Renders `/etc/prometheus/rules/standort.rules.yml`: one group
 * `standort-<site>` evaluated every {@link RULE_EVALUATION_SECONDS} s (an
 * alert turns firing within that of its condition; the scrapes stay at the
 * scrape interval). Validates the plan first (`RenderInputError`).
 */
/**
 * How often the rules are evaluated (s): an alert fires within this of its condition, so a stopped replication
 * job pages within its RPO plus a few seconds. Twenty-odd rules every 5 s cost Prometheus nothing.
 */
export const RULE_EVALUATION_SECONDS = 5;

export function renderAlertRules(plan: MonitoringPlan): string {
  const rules = alertRules(plan).map((r) => ({
    alert: r.alert,
    expr: r.expr,
    ...(r.forSeconds ? { for: duration(r.forSeconds) } : {}),
    labels: r.labels,
    annotations: r.annotations,
  }));
  return (
    comment([
      `standort: alert rules of ${plan.site}. Rendered from the monitoring plan; do not edit.`,
      "Every rule instance has promtool unit tests (standort: lib/monitoring/rule-tests.ts).",
    ]) + toYaml({ groups: [{ name: `standort-${plan.site}`, interval: duration(RULE_EVALUATION_SECONDS), rules }] })
  );
}
