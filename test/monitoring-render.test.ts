// The monitoring servers' files (Prometheus configuration, alert rules and
// their promtool unit tests, Alertmanager configuration), checked by the real
// tools that read them (promtool, amtool), with proof that each check rejects
// a broken file and that the rule tests fail when a rule's threshold changes.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { AlertReceiver, MonitoringPlan } from "../lib/monitoring/plan";
import { birdExporterDefaultsFile, monitoringFiles, renderPrometheusConfig } from "../lib/monitoring/prometheus";
import { ALERTS, BIRD_EXPORTER_ARGS, RULES_PATH, alertRules, renderAlertRules } from "../lib/monitoring/rules";
import { renderRuleTests } from "../lib/monitoring/rule-tests";
import { alertmanagerDefaultsFile, renderAlertmanagerConfig, renderAlertmanagerDefaults } from "../lib/monitoring/alertmanager";
import { RenderInputError } from "../lib/render/errors";
import { FILE_PLACEHOLDER, RenderedFile } from "../lib/render/types";
import { describeFailures, requireTool, run, runAll } from "./helpers/tools";

/** Management addresses of a site like Vienna: two of each pair, one virtualization host. */
const MGMT: Record<string, string> = {
  "vie-fw-1": "10.20.0.11",
  "vie-fw-2": "10.20.0.12",
  "vie-proxy-1": "10.20.0.21",
  "vie-proxy-2": "10.20.0.22",
  "vie-storage-1": "10.20.0.31",
  "vie-storage-2": "10.20.0.32",
  "vie-virt-1": "10.20.0.41",
};
const on = (port: number, ...hosts: string[]) => hosts.map((host) => ({ host, target: `${MGMT[host]}:${port}` }));
const storage = ["vie-storage-1", "vie-storage-2"];

const PLAN: MonitoringPlan = {
  site: "vienna",
  servers: storage.map((host) => ({ host, address: MGMT[host] })),
  scrapeIntervalSeconds: 15,
  targets: {
    node: on(9100, ...Object.keys(MGMT)),
    haproxy: on(8405, "vie-proxy-1", "vie-proxy-2", "vie-virt-1"),
    bird: on(9324, "vie-fw-1", "vie-fw-2"),
  },
  jobs: [
    { job: "standort-replicate-shop-files", kind: "replication", service: "shop", hosts: storage, maxAgeSeconds: 5 * 60 },
    { job: "standort-replicate-wiki-db", kind: "replication", service: "wiki", hosts: storage, maxAgeSeconds: 15 * 60 },
    { job: "standort-backup-shop", kind: "backup", service: "shop", hosts: storage, maxAgeSeconds: 26 * 3600 },
  ],
  pairs: [
    { pair: "firewall", members: ["vie-fw-1", "vie-fw-2"] },
    { pair: "proxy", members: ["vie-proxy-1", "vie-proxy-2"] },
    { pair: "storage", members: storage },
  ],
  bgpSessions: [
    { host: "vie-fw-1", protocol: "upstream_a" },
    { host: "vie-fw-2", protocol: "upstream_b" },
  ],
  tunnels: [{ host: "vie-fw-1", interface: "wg-vie-fra", peer: "frankfurt" }],
  certificateWarningDays: 14,
};

const EMAIL: AlertReceiver = { kind: "email", to: "ops@example.org", from: "alerts@vienna.example.org", smarthost: "mail.example.org:587" };
const WEBHOOK: AlertReceiver = { kind: "webhook", url: "https://hooks.example.org/services/T000/B000/not-a-real-token" };

const dir = mkdtempSync(join(tmpdir(), "standort-monitoring-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a file into the temp folder and returns its path. */
function put(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function corrupt(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `the file contains ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

/** The file's own check command (the one delivery runs on the host), pointed at `local`. */
function checkArgv(file: RenderedFile, local: string): string[] {
  assert.ok(file.check, `${file.path} has no check command`);
  return file.check.command.map((w) => (w === FILE_PLACEHOLDER ? local : w));
}

const rules = renderAlertRules(PLAN);
const rulesFile = put("standort.rules.yml", rules);
const ruleTests = renderRuleTests(PLAN, rulesFile);
const config = renderPrometheusConfig(PLAN);

interface TestFile {
  tests: Array<{
    name: string;
    alert_rule_test: Array<{ alertname: string; exp_alerts: Array<{ exp_labels: Record<string, string> }> }>;
  }>;
}

test("rendering is deterministic: same plan, same bytes; target order does not matter", () => {
  assert.equal(renderPrometheusConfig(PLAN), config);
  assert.equal(renderAlertRules(PLAN), rules);
  assert.equal(renderRuleTests(PLAN, rulesFile), ruleTests);
  assert.equal(renderAlertmanagerConfig(PLAN, EMAIL), renderAlertmanagerConfig(PLAN, EMAIL));
  assert.deepEqual(monitoringFiles(PLAN, WEBHOOK), monitoringFiles(PLAN, WEBHOOK));
  const shuffled: MonitoringPlan = {
    ...PLAN,
    targets: {
      node: [...PLAN.targets.node].reverse(),
      haproxy: [...PLAN.targets.haproxy].reverse(),
      bird: [...PLAN.targets.bird].reverse(),
    },
    servers: [...PLAN.servers].reverse(),
  };
  assert.equal(renderPrometheusConfig(shuffled), config);
});

test("prometheus.yml: every target with its host label, both Alertmanagers, the rules file, textfile job labels kept", () => {
  const parsed = parse(config);
  assert.equal(parsed.global.scrape_interval, "15s");
  assert.equal(parsed.global.evaluation_interval, "15s");
  // Only the site: both servers get the same file (no replica label), so their alerts are identical.
  assert.deepEqual(parsed.global.external_labels, { site: "vienna" });
  assert.deepEqual(parsed.alerting.alertmanagers[0].static_configs[0].targets, ["10.20.0.31:9093", "10.20.0.32:9093"]);
  assert.deepEqual(parsed.rule_files, [RULES_PATH]);
  const jobs = Object.fromEntries(parsed.scrape_configs.map((j: any) => [j.job_name, j]));
  assert.deepEqual(Object.keys(jobs), ["node", "haproxy", "bird", "prometheus", "alertmanager"]);
  assert.equal(jobs.node.honor_labels, true, "textfile metrics keep their own job label");
  assert.equal(jobs.haproxy.metrics_path, "/metrics");
  const targets = (job: string) => jobs[job].static_configs.map((c: any) => `${c.labels.host}=${c.targets.join(",")}`);
  assert.deepEqual(
    targets("node"),
    PLAN.targets.node.map((t) => `${t.host}=${t.target}`),
  );
  assert.deepEqual(targets("bird"), ["vie-fw-1=10.20.0.11:9324", "vie-fw-2=10.20.0.12:9324"]);
  assert.deepEqual(targets("prometheus"), ["vie-storage-1=10.20.0.31:9090", "vie-storage-2=10.20.0.32:9090"]);
  assert.deepEqual(targets("alertmanager"), ["vie-storage-1=10.20.0.31:9093", "vie-storage-2=10.20.0.32:9093"]);
  // A scrape interval under Prometheus's 10 s default timeout takes the interval as timeout (else the config is invalid).
  assert.equal(parse(renderPrometheusConfig({ ...PLAN, scrapeIntervalSeconds: 5 })).global.scrape_timeout, "5s");
});

test("promtool check config accepts the configuration (with its rules) and rejects a broken one", async (t) => {
  if (!requireTool(t, "promtool")) return;
  // The full check loads rule_files from their path: point it at the rendered rules in the temp folder.
  const full = put("prometheus.yml", corrupt(config, RULES_PATH, rulesFile));
  const broken = put("prometheus-broken.yml", corrupt(config, "scrape_timeout: 10s", "scrape_timeout: 30s"));
  const badInterval = put("prometheus-bad-interval.yml", corrupt(config, "scrape_interval: 15s", "scrape_interval: 15 seconds"));
  const file = monitoringFiles(PLAN, EMAIL).find((f) => f.path === "/etc/prometheus/prometheus.yml")!;
  // The delivered check (--syntax-only) runs on the staged file, whose rule_files path does not exist here.
  const staged = put("prometheus-staged.yml", file.content);
  const [ok, stagedOk, timeout, interval, stagedBroken] = await runAll([
    ["promtool", "check", "config", full],
    checkArgv(file, staged),
    ["promtool", "check", "config", broken],
    ["promtool", "check", "config", badInterval],
    checkArgv(file, broken),
  ]);
  assert.equal(ok.code, 0, describeFailures([ok]));
  assert.match(ok.stdout, /1 rule files found/);
  assert.equal(stagedOk.code, 0, describeFailures([stagedOk]));
  assert.notEqual(timeout.code, 0, "a scrape timeout above the interval is rejected");
  assert.match(timeout.stderr + timeout.stdout, /scrape timeout greater than scrape interval/);
  assert.notEqual(interval.code, 0, "a malformed duration is rejected");
  assert.notEqual(stagedBroken.code, 0, "the delivered check rejects it too");
});

test("promtool check rules accepts the rules and rejects a broken expression", async (t) => {
  if (!requireTool(t, "promtool")) return;
  const file = monitoringFiles(PLAN, EMAIL).find((f) => f.path === RULES_PATH)!;
  const broken = put("rules-broken.yml", corrupt(rules, "max by (job) (", "max by (job) (("));
  const [ok, bad] = await runAll([checkArgv(file, rulesFile), checkArgv(file, broken)]);
  assert.equal(ok.code, 0, describeFailures([ok]));
  assert.match(ok.stdout, new RegExp(`SUCCESS: ${alertRules(PLAN).length} rules found`));
  assert.notEqual(bad.code, 0, "a broken expression is rejected");
});

test("promtool test rules: every rendered case passes", async (t) => {
  if (!requireTool(t, "promtool")) return;
  const result = await run(["promtool", "test", "rules", put("rules.test.yml", ruleTests)]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /SUCCESS/);
});

test("promtool test rules: the generated cases hold at another scrape interval (60 s: fors shorter than one evaluation)", async (t) => {
  if (!requireTool(t, "promtool")) return;
  const plan = { ...PLAN, scrapeIntervalSeconds: 60 };
  const rulesAt60 = put("standort-60.rules.yml", renderAlertRules(plan));
  const result = await run(["promtool", "test", "rules", put("rules-60.test.yml", renderRuleTests(plan, rulesAt60))]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

test("the rule tests cover every alert firing and quiet, and every job, pair, session and tunnel firing", () => {
  const parsed = parse(ruleTests) as TestFile;
  const checks = parsed.tests.flatMap((c) => c.alert_rule_test);
  for (const alert of ALERTS) {
    const mine = checks.filter((c) => c.alertname === alert.name);
    assert.ok(
      mine.some((c) => c.exp_alerts.length > 0),
      `${alert.name} has a case where it fires`,
    );
    assert.ok(
      mine.some((c) => c.exp_alerts.length === 0),
      `${alert.name} has a case where it stays quiet`,
    );
  }
  assert.deepEqual(
    new Set(ALERTS.map((a) => a.name)),
    new Set(alertRules(PLAN).map((r) => r.alert)),
    "ALERTS lists exactly the rules' alerts",
  );
  const fired = checks.flatMap((c) => c.exp_alerts.map((a) => ({ alertname: c.alertname, ...a.exp_labels })));
  const firedWith = (alertname: string, labels: Record<string, string>) =>
    fired.some((f) => f.alertname === alertname && Object.entries(labels).every(([k, v]) => (f as Record<string, string>)[k] === v));
  for (const j of PLAN.jobs) {
    const alertname = j.kind === "replication" ? "ReplicationStale" : "BackupStale";
    assert.ok(firedWith(alertname, { job: j.job, service: j.service, severity: j.kind === "replication" ? "page" : "ticket" }), j.job);
    assert.ok(firedWith("JobFailed", { job: j.job }), `JobFailed ${j.job}`);
  }
  for (const p of PLAN.pairs) assert.ok(firedWith("PairNotOneActive", { pair: p.pair, severity: "page" }), p.pair);
  for (const s of PLAN.bgpSessions) assert.ok(firedWith("BgpSessionDown", { host: s.host, name: s.protocol }), s.protocol);
  for (const x of PLAN.tunnels) assert.ok(firedWith("TunnelHandshakeStale", { interface: x.interface, peer: x.peer }), x.interface);
  // Expected alerts carry their annotations, filled in as Prometheus does.
  const first = parsed.tests.find((c) => c.alert_rule_test.some((a) => a.alertname === "ReplicationStale" && a.exp_alerts.length > 0))!;
  const annotations = (first.alert_rule_test[0].exp_alerts[0] as unknown as { exp_annotations: Record<string, string> }).exp_annotations;
  assert.match(annotations.description, /journalctl -u standort-replicate-shop-files/);
  assert.doesNotMatch(annotations.description, /\{\{/);
});

test("changed rules fail the rule tests: the tests bite", async (t) => {
  if (!requireTool(t, "promtool")) return;
  const mutations: Array<{ what: string; from: string; to: string; failing: RegExp }> = [
    {
      what: "replication RPO doubled",
      from: "> 270\n",
      to: "> 570\n",
      failing: /ReplicationStale standort-replicate-shop-files: last success/,
    },
    {
      what: "replication RPO halved",
      from: "> 870\n",
      to: "> 420\n",
      failing: /ReplicationStale standort-replicate-wiki-db: freshest success/,
    },
    {
      what: "a never-succeeded job not caught",
      from: '> 93570\n          or\n          absent_over_time(standort_job_last_success_timestamp_seconds{job="standort-backup-shop"}[1m])',
      to: "> 93570",
      failing: /BackupStale standort-backup-shop: never succeeded/,
    },
    {
      what: "a pair member counted while its exporter is down",
      from: ' and on (instance) up{job="node"} == 1',
      to: "",
      failing: /PairNotOneActive firewall: the active member vie-fw-1 does not answer/,
    },
    {
      what: "server-less backends counted as empty pools",
      from: '\n          and on (instance, proxy) group by (instance, proxy) (haproxy_server_status{job="haproxy"})',
      to: "",
      failing: /healthy site: nothing fires/,
    },
    {
      what: "TargetDown without its grace period",
      from: "for: 2m",
      to: "for: 30s",
      failing: /TargetDown node vie-fw-1: down for the last/,
    },
  ];
  const commands = mutations.map((m, i) => {
    const mutated = put(`rules-mutated-${i}.yml`, corrupt(rules, m.from, m.to));
    return ["promtool", "test", "rules", put(`rules-mutated-${i}.test.yml`, renderRuleTests(PLAN, mutated))];
  });
  const results = await runAll(commands, mutations.length);
  results.forEach((r, i) => {
    assert.notEqual(r.code, 0, `${mutations[i].what}: promtool test rules must fail`);
    assert.match(r.stdout + r.stderr, mutations[i].failing, mutations[i].what);
  });
});

test("amtool check-config accepts both receiver kinds and rejects a broken configuration", async (t) => {
  if (!requireTool(t, "amtool")) return;
  const file = monitoringFiles(PLAN, EMAIL).find((f) => f.path === "/etc/prometheus/alertmanager.yml")!;
  const email = put("alertmanager-email.yml", file.content);
  const webhook = put("alertmanager-webhook.yml", renderAlertmanagerConfig(PLAN, WEBHOOK));
  const unknownReceiver = put(
    "alertmanager-broken.yml",
    corrupt(file.content, "receiver: operator\n  group_by", "receiver: nobody\n  group_by"),
  );
  const badUrl = put("alertmanager-bad-url.yml", corrupt(renderAlertmanagerConfig(PLAN, WEBHOOK), "url: https://", "url: "));
  const [a, b, c, d] = await runAll([
    checkArgv(file, email),
    checkArgv(file, webhook),
    checkArgv(file, unknownReceiver),
    checkArgv(file, badUrl),
  ]);
  assert.equal(a.code, 0, describeFailures([a]));
  assert.equal(b.code, 0, describeFailures([b]));
  assert.notEqual(c.code, 0, "a route to an undefined receiver is rejected");
  assert.match(c.stdout + c.stderr, /nobody/);
  assert.notEqual(d.code, 0, "a webhook URL without scheme is rejected");
});

test("alertmanager.yml: one operator receiver, STARTTLS required, grouping and inhibition", () => {
  const email = parse(renderAlertmanagerConfig(PLAN, EMAIL));
  assert.equal(email.route.receiver, "operator");
  assert.deepEqual(email.route.group_by, ["alertname", "site", "pair", "service"]);
  assert.deepEqual(email.receivers, [
    {
      name: "operator",
      email_configs: [
        { to: EMAIL.to, from: (EMAIL as any).from, smarthost: (EMAIL as any).smarthost, require_tls: true, send_resolved: true },
      ],
    },
  ]);
  assert.deepEqual(email.inhibit_rules, [
    { source_matchers: ['alertname="TargetDown"'], target_matchers: ['alertname!="TargetDown"'], equal: ["job", "host"] },
  ]);
  const webhook = parse(renderAlertmanagerConfig(PLAN, WEBHOOK));
  assert.deepEqual(webhook.receivers, [{ name: "operator", webhook_configs: [{ url: (WEBHOOK as any).url, send_resolved: true }] }]);
});

test("monitoringFiles: rules before the config that names them, Debian paths, the receiver file secret and private", () => {
  const files = monitoringFiles(PLAN, WEBHOOK);
  assert.deepEqual(
    files.map((f) => [f.path, f.mode, f.owner ?? "root:root", f.secret, f.delivery]),
    [
      [RULES_PATH, "0644", "root:root", false, "ssh"],
      ["/etc/prometheus/prometheus.yml", "0644", "root:root", false, "ssh"],
      ["/etc/prometheus/alertmanager.yml", "0640", "root:prometheus", true, "ssh"],
    ],
  );
  assert.deepEqual(
    files.map((f) => f.check?.command),
    [
      ["promtool", "check", "rules", FILE_PLACEHOLDER],
      ["promtool", "check", "config", "--syntax-only", FILE_PLACEHOLDER],
      ["amtool", "check-config", FILE_PLACEHOLDER],
    ],
  );
  for (const f of files) {
    assert.ok(f.content.endsWith("\n"), f.path);
    assert.ok(f.reload && f.healthCheck, `${f.path} reloads and checks its daemon`);
  }
  assert.match(files[2].content, /not-a-real-token/);
  assert.ok(!files[0].content.includes("not-a-real-token") && !files[1].content.includes("not-a-real-token"));
});

test("Alertmanager cluster flags per server and bird_exporter flags are valid shell", async (t) => {
  assert.equal(
    renderAlertmanagerDefaults(PLAN, "vie-storage-1").split("\n").at(-2),
    'ARGS="--cluster.listen-address=10.20.0.31:9094 --cluster.peer=10.20.0.32:9094"',
  );
  assert.equal(
    renderAlertmanagerDefaults({ ...PLAN, servers: PLAN.servers.slice(0, 1) }, "vie-storage-1")
      .split("\n")
      .at(-2),
    'ARGS="--cluster.listen-address="',
  );
  assert.throws(() => renderAlertmanagerDefaults(PLAN, "vie-fw-1"), /not a monitoring server/);
  assert.deepEqual(BIRD_EXPORTER_ARGS, ["-bird.v2", "-format.new"]);
  if (!requireTool(t, "sh")) return;
  const files = [alertmanagerDefaultsFile(PLAN, "vie-storage-2"), birdExporterDefaultsFile()];
  const results = await runAll(files.map((f, i) => checkArgv(f, put(`defaults-${i}`, f.content))));
  assert.equal(results.filter((r) => r.code !== 0).length, 0, describeFailures(results.filter((r) => r.code !== 0)));
});

test("a plan the renderers cannot express safely is refused with every problem named", () => {
  const bad: MonitoringPlan = {
    ...PLAN,
    scrapeIntervalSeconds: 0,
    pairs: [...PLAN.pairs, { pair: 'fire"wall', members: ["vie-fw-1"] }, PLAN.pairs[0], { pair: "dns", members: ["vie-dns-1"] }],
    bgpSessions: [...PLAN.bgpSessions, { host: "vie-proxy-1", protocol: "upstream_c" }],
  };
  assert.throws(
    () => renderAlertRules(bad),
    (e: unknown) =>
      e instanceof RenderInputError &&
      /vienna: monitoring: scrapeIntervalSeconds: 0 must be/.test(e.message) &&
      /pairs\[3\]\.pair/.test(e.message) &&
      /pairs\[4\]: firewall is listed twice/.test(e.message) &&
      /pairs\[5\]\.members\[0\]: vie-dns-1 has no node target/.test(e.message) &&
      /bgpSessions\[2\]\.host: vie-proxy-1 has no bird target/.test(e.message),
  );
  assert.throws(() => renderPrometheusConfig(bad), RenderInputError);
  assert.throws(() => renderAlertmanagerConfig(bad, EMAIL), RenderInputError);
});
