/**
 * Unit tests for the site's alert rules, for `promtool test rules` (Prometheus
 * "Unit testing for rules" docs): generated from the same plan as the rules,
 * so every rule instance (each job, pair, BGP session, tunnel) has cases that
 * make it fire, with its exact labels and annotations, and cases that keep it
 * quiet, some just inside its threshold (a changed threshold fails them).
 *
 * How the cases are built: a healthy site (every target up, every job just
 * succeeded, one active member per pair, sessions up, fresh handshakes, a
 * backend with a server, a far certificate), then one change per case.
 * promtool starts at time 0 and `time()` is the evaluation time, so a
 * timestamp metric of constant value v is `T - v` seconds old at T; values
 * may be negative (`-93000+0x42`), which places a success before time 0.
 * Every case is evaluated at the same `T` (at least `EVAL_SECONDS`, and a
 * few evaluations past the longest `for`); a change is held from time 0, and
 * an age that must fire is past its limit by the rule's `for` and a margin.
 * Pure: plan in, text out.
 */
import { METRICS, MonitoringPlan, ScrapeTarget, WatchedJob } from "./plan";
import { MONITORING_PORTS } from "../render/policy";
import { hostPort } from "./prometheus";
import {
  ALERTS,
  AlertName,
  AlertRule,
  BIRD_PROTOCOL_UP,
  HAPROXY_METRICS,
  RULES_PATH,
  SCRAPE_JOBS,
  TUNNEL_HANDSHAKE_MAX_AGE_SECONDS,
  alertRules,
  comment,
  duration,
  toYaml,
} from "./rules";

/** The least evaluation time (s) of every case; later when a rule's `for` needs it (see `CaseBuilder.t`). */
export const EVAL_SECONDS = 600;

/** An input series: metric name, labels, and values in promtool's expanding notation. */
interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly values: string;
}

/** What one alertname must show at the evaluation time: these alerts exactly (empty: none). */
interface Check {
  readonly alertname: AlertName;
  readonly alerts: ReadonlyArray<{ readonly labels: Record<string, string>; readonly annotations: Record<string, string> }>;
}

interface Case {
  readonly name: string;
  readonly series: ReadonlyArray<Series>;
  readonly checks: ReadonlyArray<Check>;
}

/** Fills `{{ $labels.x }}` the way Prometheus does for an alert whose expression returned `labels`. */
function expand(template: string, labels: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{ \$labels\.([A-Za-z_][A-Za-z0-9_]*) \}\}/g, (_, name: string) => labels[name] ?? "");
}

/** The alert `rule` raises for an expression result with `labels` (rule labels win, as in Prometheus). */
function firing(rule: AlertRule, labels: Readonly<Record<string, string>>): Check["alerts"][number] {
  return {
    labels: { ...labels, ...rule.labels },
    annotations: { summary: expand(rule.annotations.summary, labels), description: expand(rule.annotations.description, labels) },
  };
}

/** Builds the cases of one plan; the timeline (interval, T, sample count) is shared. */
class CaseBuilder {
  readonly interval: number;
  /** The evaluation time (s): a multiple of the interval, so a sample falls on it. */
  readonly t: number;
  /** Samples per series: through T and two more. */
  private readonly samples: number;
  readonly rules: AlertRule[];

  constructor(readonly plan: MonitoringPlan) {
    this.rules = alertRules(plan);
    this.interval = plan.scrapeIntervalSeconds;
    // Past the longest `for` by a few evaluations, so a change held from time 0 has fired.
    const longestFor = Math.max(...this.rules.map((r) => r.forSeconds ?? 0));
    this.t = Math.ceil(Math.max(EVAL_SECONDS, longestFor + 4 * this.interval) / this.interval) * this.interval;
    this.samples = this.t / this.interval + 3;
  }

  /** The same value at every sample. */
  constant(value: number): string {
    return `${value}+0x${this.samples - 1}`;
  }

  /** `before` up to (not including) second `from`, `after` from there on. */
  step(before: number, after: number, from: number): string {
    const first = Math.ceil(from / this.interval);
    return first <= 0 ? this.constant(after) : `${before}x${first - 1} ${after}x${this.samples - first - 1}`;
  }

  /** The rule instance of `alert` with `key` (rules.ts `AlertRule.key`; a site-wide rule's key is its name). */
  rule(alert: AlertName, key: string = alert): AlertRule {
    const found = this.rules.find((r) => r.alert === alert && r.key === key);
    if (!found) throw new Error(`no ${alert} rule ${key}`);
    return found;
  }

  /** The scrape target of a host in one job; a stand-in for a host the plan does not list (tests only). */
  target(kind: "node" | "haproxy" | "bird", host: string): ScrapeTarget {
    const port = { node: MONITORING_PORTS.nodeExporter, haproxy: MONITORING_PORTS.haproxyExporter, bird: MONITORING_PORTS.birdExporter }[
      kind
    ];
    return this.plan.targets[kind].find((t) => t.host === host) ?? { host, target: `${host}:${port}` };
  }

  /** Labels of a metric that `kind`'s exporter on `host` exposes, as scraped. */
  scraped(kind: "node" | "haproxy" | "bird", host: string, labels: Record<string, string> = {}): Record<string, string> {
    const t = this.target(kind, host);
    return { job: SCRAPE_JOBS[kind], instance: t.target, host: t.host, ...labels };
  }

  /** A textfile metric of a watched job on one of its hosts (its `job` label is the unit, kept by honor_labels). */
  jobLabels(job: WatchedJob, host: string): Record<string, string> {
    const t = this.target("node", host);
    return { job: job.job, kind: job.kind, ...(job.service ? { service: job.service } : {}), instance: t.target, host };
  }

  /** The HAProxy target the generic backend cases use (a stand-in when the plan scrapes none). */
  get haproxyHost(): string {
    return this.plan.targets.haproxy[0]?.host ?? "haproxy-test";
  }

  /** The host the certificate cases put a certificate on. */
  get certificateHost(): string {
    return this.plan.targets.node[0]?.host ?? this.plan.servers[0].host;
  }

  static readonly CERT_PATH = "/etc/standort/test-certificate.pem";
  static readonly BACKEND = "svc_test";
  /** A backend without servers, as the ingress's 421 answer: reports 0 active and 0 backup servers, must not alert. */
  static readonly SERVERLESS_BACKEND = "standort_misdirected";

  /** Every target up, every job fresh, one active member per pair, sessions up, tunnels fresh, a pool with a server. */
  healthy(): Series[] {
    const { plan, t } = this;
    const up = (kind: keyof typeof SCRAPE_JOBS, targets: ReadonlyArray<ScrapeTarget>) =>
      targets.map((x) => ({ name: "up", labels: { job: SCRAPE_JOBS[kind], instance: x.target, host: x.host }, values: this.constant(1) }));
    const servers = (port: number) => plan.servers.map((s) => ({ host: s.host, target: hostPort(s.address, port) }));
    const haproxyTargets = plan.targets.haproxy.length > 0 ? plan.targets.haproxy : [this.target("haproxy", this.haproxyHost)];
    const series: Series[] = [
      ...up("node", plan.targets.node),
      ...up("haproxy", plan.targets.haproxy),
      ...up("bird", plan.targets.bird),
      ...up("prometheus", servers(MONITORING_PORTS.prometheus)),
      ...up("alertmanager", servers(MONITORING_PORTS.alertmanager)),
      // The first host just succeeded; the others succeeded long ago (a pair's passive member).
      ...plan.jobs.flatMap((j) =>
        j.hosts.map((h, i) => ({ name: METRICS.jobLastSuccess, labels: this.jobLabels(j, h), values: this.constant(i === 0 ? t : 0) })),
      ),
      ...plan.pairs.flatMap((p) =>
        p.members.map((m, i) => ({
          name: METRICS.vrrpMaster,
          labels: this.scraped("node", m, { pair: p.pair }),
          values: this.constant(i === 0 ? 1 : 0),
        })),
      ),
      ...plan.bgpSessions.map((s) => ({
        name: BIRD_PROTOCOL_UP,
        labels: this.scraped("bird", s.host, { name: s.protocol, proto: "BGP", ip_version: "4", state: "up" }),
        values: this.constant(1),
      })),
      ...plan.tunnels.map((x) => ({
        name: METRICS.wireguardHandshake,
        labels: this.scraped("node", x.host, { interface: x.interface, peer: x.peer }),
        values: this.constant(t),
      })),
      ...haproxyTargets.flatMap((x) => [
        {
          name: HAPROXY_METRICS.backendActiveServers,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.BACKEND }),
          values: this.constant(1),
        },
        {
          name: HAPROXY_METRICS.backendBackupServers,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.BACKEND }),
          values: this.constant(0),
        },
        {
          name: HAPROXY_METRICS.serverStatus,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.BACKEND, server: "s1", state: "UP" }),
          values: this.constant(1),
        },
        {
          name: HAPROXY_METRICS.serverStatus,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.BACKEND, server: "s1", state: "DOWN" }),
          values: this.constant(0),
        },
        {
          name: HAPROXY_METRICS.backendActiveServers,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.SERVERLESS_BACKEND }),
          values: this.constant(0),
        },
        {
          name: HAPROXY_METRICS.backendBackupServers,
          labels: this.scraped("haproxy", x.host, { proxy: CaseBuilder.SERVERLESS_BACKEND }),
          values: this.constant(0),
        },
      ]),
      {
        name: METRICS.certificateExpiry,
        labels: this.scraped("node", this.certificateHost, { path: CaseBuilder.CERT_PATH }),
        values: this.constant(t + (plan.certificateWarningDays + 30) * 86400),
      },
    ];
    return series;
  }

  /** Every alertname quiet. */
  allQuiet(): Check[] {
    return ALERTS.map((a) => ({ alertname: a.name, alerts: [] }));
  }
}

/** Replaces the values of the series that match. */
function set(series: ReadonlyArray<Series>, match: (s: Series) => boolean, values: string): Series[] {
  return series.map((s) => (match(s) ? { ...s, values } : s));
}

/** Replaces the series that match (labels and values). */
function replace(series: ReadonlyArray<Series>, match: (s: Series) => boolean, by: (s: Series) => Series): Series[] {
  return series.map((s) => (match(s) ? by(s) : s));
}

function drop(series: ReadonlyArray<Series>, match: (s: Series) => boolean): Series[] {
  return series.filter((s) => !match(s));
}

const is =
  (name: string, labels: Readonly<Record<string, string>>) =>
  (s: Series): boolean =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** Seconds inside/outside a threshold for the edge cases: small against it, so doubling or halving it flips a case. */
function margin(threshold: number): number {
  return Math.max(1, Math.min(60, Math.floor(threshold / 4)));
}

function jobCases(b: CaseBuilder): Case[] {
  const t = b.t;
  return b.plan.jobs.flatMap((j): Case[] => {
    const alert = j.kind === "replication" ? "ReplicationStale" : "BackupStale";
    const staleRule = b.rule(alert, `job:${j.job}`);
    const success = is(METRICS.jobLastSuccess, { job: j.job });
    const m = margin(j.maxAgeSeconds);
    // Past the limit long enough to have fired: true from (limit + for) before T on.
    const old = j.maxAgeSeconds + (staleRule.forSeconds ?? 0) + m;
    const failedRule = b.rule("JobFailed");
    const failedLabels = { job: j.job, kind: j.kind, ...(j.service ? { service: j.service } : {}) };
    const failure = (host: string, at: number): Series => ({
      name: METRICS.jobLastFailure,
      labels: b.jobLabels(j, host),
      values: b.constant(at),
    });
    const healthy = b.healthy();
    const recovered =
      j.hosts.length > 1
        ? {
            name: `JobFailed ${j.job}: failed on ${j.hosts[0]}, then succeeded on ${j.hosts[1]} (failover): quiet`,
            series: [
              ...set(
                set(healthy, is(METRICS.jobLastSuccess, { job: j.job, host: j.hosts[0] }), b.constant(t - 200)),
                is(METRICS.jobLastSuccess, { job: j.job, host: j.hosts[1] }),
                b.constant(t - 50),
              ),
              failure(j.hosts[0], t - 100),
            ],
          }
        : {
            name: `JobFailed ${j.job}: failed, then succeeded: quiet`,
            series: [...set(healthy, success, b.constant(t - 50)), failure(j.hosts[0], t - 100)],
          };
    return [
      {
        name: `${alert} ${j.job}: last success ${old}s ago on every host (limit ${j.maxAgeSeconds}s): fires`,
        series: set(healthy, success, b.constant(t - old)),
        checks: [{ alertname: alert, alerts: [firing(staleRule, { job: j.job })] }],
      },
      {
        name: `${alert} ${j.job}: never succeeded (no metric): fires`,
        series: drop(healthy, success),
        checks: [{ alertname: alert, alerts: [firing(staleRule, { job: j.job })] }],
      },
      {
        name: `${alert} ${j.job}: freshest success ${j.maxAgeSeconds - m}s ago (on ${j.hosts[0]}): quiet`,
        series: replace(healthy, success, (s) => ({
          ...s,
          values: b.constant(s.labels.host === j.hosts[0] ? t - j.maxAgeSeconds + m : t - j.maxAgeSeconds - m),
        })),
        checks: [{ alertname: alert, alerts: [] }],
      },
      {
        name: `JobFailed ${j.job}: failed after its last success: fires`,
        series: [...set(healthy, success, b.constant(t - 200)), failure(j.hosts[0], t - 100)],
        checks: [{ alertname: "JobFailed", alerts: [firing(failedRule, failedLabels)] }],
      },
      {
        name: `JobFailed ${j.job}: failed and never succeeded: fires`,
        series: [...drop(healthy, success), failure(j.hosts[0], t - 100)],
        checks: [{ alertname: "JobFailed", alerts: [firing(failedRule, failedLabels)] }],
      },
      { ...recovered, checks: [{ alertname: "JobFailed", alerts: [] }] },
    ];
  });
}

function pairCases(b: CaseBuilder): Case[] {
  return b.plan.pairs.flatMap((p): Case[] => {
    const rule = b.rule("PairNotOneActive", `pair:${p.pair}`);
    const master = is(METRICS.vrrpMaster, { pair: p.pair });
    const fires = [{ alertname: "PairNotOneActive" as const, alerts: [firing(rule, {})] }];
    const healthy = b.healthy();
    const cases: Case[] = [
      { name: `PairNotOneActive ${p.pair}: no member active: fires`, series: set(healthy, master, b.constant(0)), checks: fires },
      {
        name: `PairNotOneActive ${p.pair}: the active member ${p.members[0]} does not answer: fires`,
        series: set(healthy, is("up", { job: SCRAPE_JOBS.node, host: p.members[0] }), b.constant(0)),
        checks: fires,
      },
    ];
    if (p.members.length > 1) {
      cases.push(
        {
          name: `PairNotOneActive ${p.pair}: every member active (split brain): fires`,
          series: set(healthy, master, b.constant(1)),
          checks: fires,
        },
        {
          name: `PairNotOneActive ${p.pair}: ${p.members[1]} took over: quiet`,
          series: replace(healthy, master, (s) => ({ ...s, values: b.constant(s.labels.host === p.members[1] ? 1 : 0) })),
          checks: [{ alertname: "PairNotOneActive", alerts: [] }],
        },
      );
    }
    return cases;
  });
}

function bgpCases(b: CaseBuilder): Case[] {
  return b.plan.bgpSessions.flatMap((s): Case[] => {
    const rule = b.rule("BgpSessionDown", `bgp:${s.host}/${s.protocol}`);
    const session = is(BIRD_PROTOCOL_UP, { host: s.host, name: s.protocol });
    const fires = [
      { alertname: "BgpSessionDown" as const, alerts: [firing(rule, { job: SCRAPE_JOBS.bird, host: s.host, name: s.protocol })] },
    ];
    const healthy = b.healthy();
    return [
      {
        name: `BgpSessionDown ${s.host} ${s.protocol}: not established: fires`,
        series: replace(healthy, session, (x) => ({ ...x, labels: { ...x.labels, state: "start" }, values: b.constant(0) })),
        checks: fires,
      },
      { name: `BgpSessionDown ${s.host} ${s.protocol}: not reported: fires`, series: drop(healthy, session), checks: fires },
    ];
  });
}

function tunnelCases(b: CaseBuilder): Case[] {
  const t = b.t;
  const max = TUNNEL_HANDSHAKE_MAX_AGE_SECONDS;
  const m = margin(max);
  return b.plan.tunnels.flatMap((x): Case[] => {
    const rule = b.rule("TunnelHandshakeStale", `tunnel:${x.interface}/${x.peer}`);
    const handshake = is(METRICS.wireguardHandshake, { host: x.host, interface: x.interface, peer: x.peer });
    const fires = [
      {
        alertname: "TunnelHandshakeStale" as const,
        alerts: [firing(rule, { job: SCRAPE_JOBS.node, interface: x.interface, peer: x.peer })],
      },
    ];
    const healthy = b.healthy();
    const name = `TunnelHandshakeStale ${x.host} ${x.interface} (${x.peer})`;
    const old = max + (rule.forSeconds ?? 0) + m;
    return [
      {
        name: `${name}: last handshake ${old}s ago (limit ${max}s): fires`,
        series: set(healthy, handshake, b.constant(t - old)),
        checks: fires,
      },
      { name: `${name}: no handshake yet (0): fires`, series: set(healthy, handshake, b.constant(0)), checks: fires },
      { name: `${name}: not reported: fires`, series: drop(healthy, handshake), checks: fires },
      {
        name: `${name}: last handshake ${max - m}s ago: quiet`,
        series: set(healthy, handshake, b.constant(t - max + m)),
        checks: [{ alertname: "TunnelHandshakeStale", alerts: [] }],
      },
    ];
  });
}

function siteCases(b: CaseBuilder): Case[] {
  const { plan, t } = b;
  const healthy = b.healthy();
  const host = b.haproxyHost;
  const pool = { host, proxy: CaseBuilder.BACKEND };
  const poolLabels = b.scraped("haproxy", host, { proxy: CaseBuilder.BACKEND });
  const warn = plan.certificateWarningDays * 86400;
  const certificate = is(METRICS.certificateExpiry, { path: CaseBuilder.CERT_PATH });
  const certLabels = b.scraped("node", b.certificateHost, { path: CaseBuilder.CERT_PATH });
  const downTarget = plan.targets.node[0] ?? {
    host: plan.servers[0].host,
    target: hostPort(plan.servers[0].address, MONITORING_PORTS.prometheus),
  };
  const downJob = plan.targets.node[0] ? SCRAPE_JOBS.node : SCRAPE_JOBS.prometheus;
  const down = is("up", { job: downJob, instance: downTarget.target });
  const recently = Math.min(60, b.interval * Math.floor(60 / b.interval));
  return [
    {
      name: `BackendPoolEmpty ${host} ${CaseBuilder.BACKEND}: its only server is down: fires`,
      series: set(
        set(
          set(healthy, is(HAPROXY_METRICS.backendActiveServers, pool), b.constant(0)),
          is(HAPROXY_METRICS.serverStatus, { ...pool, state: "UP" }),
          b.constant(0),
        ),
        is(HAPROXY_METRICS.serverStatus, { ...pool, state: "DOWN" }),
        b.constant(1),
      ),
      checks: [{ alertname: "BackendPoolEmpty", alerts: [firing(b.rule("BackendPoolEmpty"), poolLabels)] }],
    },
    {
      name: `BackendPoolEmpty ${host} ${CaseBuilder.BACKEND}: no active server, a backup one: quiet`,
      series: set(
        set(healthy, is(HAPROXY_METRICS.backendActiveServers, pool), b.constant(0)),
        is(HAPROXY_METRICS.backendBackupServers, pool),
        b.constant(1),
      ),
      checks: [{ alertname: "BackendPoolEmpty", alerts: [] }],
    },
    {
      name: `CertificateExpiring: ${warn - 60}s left of a ${plan.certificateWarningDays}-day warning period: fires`,
      series: set(healthy, certificate, b.constant(t + warn - 60)),
      checks: [{ alertname: "CertificateExpiring", alerts: [firing(b.rule("CertificateExpiring"), certLabels)] }],
    },
    {
      name: `TargetDown ${downJob} ${downTarget.host}: down for the whole run: fires`,
      series: set(healthy, down, b.constant(0)),
      checks: [
        {
          alertname: "TargetDown",
          alerts: [firing(b.rule("TargetDown"), { job: downJob, instance: downTarget.target, host: downTarget.host })],
        },
      ],
    },
    {
      name: `TargetDown ${downJob} ${downTarget.host}: down for the last ${recently}s only (< 2m): quiet`,
      series: set(healthy, down, b.step(1, 0, t - recently)),
      checks: [{ alertname: "TargetDown", alerts: [] }],
    },
  ];
}

/** The two cases where nothing fires: a healthy site, and every threshold approached from inside. */
function quietCases(b: CaseBuilder): Case[] {
  const { plan, t } = b;
  let edge = b.healthy();
  for (const j of plan.jobs) {
    edge = set(edge, is(METRICS.jobLastSuccess, { job: j.job }), b.constant(t - j.maxAgeSeconds + margin(j.maxAgeSeconds)));
  }
  const max = TUNNEL_HANDSHAKE_MAX_AGE_SECONDS;
  edge = set(edge, (s) => s.name === METRICS.wireguardHandshake, b.constant(t - max + margin(max)));
  edge = set(edge, (s) => s.name === METRICS.certificateExpiry, b.constant(t + plan.certificateWarningDays * 86400 + 60));
  return [
    { name: "healthy site: nothing fires", series: b.healthy(), checks: b.allQuiet() },
    { name: "every age just inside its threshold: nothing fires", series: edge, checks: b.allQuiet() },
  ];
}

/** A series as promtool writes it: `name{a="x",b="y"}` (values are checked safe, see rules.ts). */
function seriesText(s: Series): string {
  return `${s.name}{${Object.entries(s.labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;
}

/**
 * Renders the promtool test file for the plan's rules. `rulesPath` is the
 * rules file it loads (promtool resolves a relative path against the test
 * file's folder). Evaluation interval and input interval are the plan's
 * scrape interval; every case is evaluated at the same time (≥ 10 min).
 * Each alertname of `ALERTS` has at least one firing and one quiet case;
 * every job, pair, BGP session and tunnel has its own firing cases.
 */
export function renderRuleTests(plan: MonitoringPlan, rulesPath: string = RULES_PATH): string {
  const b = new CaseBuilder(plan);
  const cases = [...quietCases(b), ...jobCases(b), ...pairCases(b), ...bgpCases(b), ...tunnelCases(b), ...siteCases(b)];
  const interval = duration(b.interval);
  const tests = cases.map((c) => ({
    name: c.name,
    interval,
    input_series: c.series.map((s) => ({ series: seriesText(s), values: s.values })),
    alert_rule_test: c.checks.map((check) => ({
      eval_time: duration(b.t),
      alertname: check.alertname,
      exp_alerts: check.alerts.map((a) => ({ exp_labels: a.labels, exp_annotations: a.annotations })),
    })),
  }));
  return (
    comment([
      `standort: promtool unit tests of the alert rules of ${plan.site} (promtool test rules). Rendered; do not edit.`,
      `Every case starts at 0 and is evaluated at ${b.t}s: a timestamp metric of value v is then ${b.t} - v seconds old.`,
    ]) + toYaml({ rule_files: [rulesPath], evaluation_interval: interval, tests })
  );
}
