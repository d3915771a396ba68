// The workloads of the footprint on compose sites: the instances each site runs, the Compose projects (checked by
// docker-compose itself), the ingress (checked by HAProxy), the secret files, and the schema's rules for workloads.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { loadFootprint, validateFootprint } from "../lib/footprint/load";
import { FootprintSchema } from "../lib/footprint/schema";
import { siteServices } from "../lib/footprint/services";
import { COMPOSE_DIR, SECRETS_DIR, UPSTREAM_PORT_BASE, workloadInstances } from "../lib/footprint/workloads";
import { planHostFiles } from "../lib/preview/files";
import { FILE_PLACEHOLDER, RenderedFile } from "../lib/render";
import { requireTool } from "./helpers/tools";
import { runUnderMocks } from "../lib/preview/harness";
import { readStackConfig } from "../lib/preview/run-stack";
import { locationStack } from "../stacks/program";

const { footprint, sites } = loadFootprint();
const dir = mkdtempSync(join(tmpdir(), "standort-workloads-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const site = (name: string) => sites.find((s) => s.name === name)!;
const files = (name: string, host: string) => planHostFiles(site(name), sites, footprint).find((h) => h.host === host)!.files;

/** Runs a file's own check (the command delivery runs on the host) on `content`; exit code and output. */
function check(file: RenderedFile, content: string): { code: number; output: string } {
  const local = join(dir, `${Math.random().toString(36).slice(2)}-${file.path.split("/").pop()}`);
  writeFileSync(local, content);
  const argv = file.check!.command.map((w) => (w === FILE_PLACEHOLDER ? local : w));
  try {
    return {
      code: 0,
      output: execFileSync(argv[0], argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 }),
    };
  } catch (error) {
    const e = error as { status?: number; stderr?: string; stdout?: string };
    return { code: e.status ?? 1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

// karlsruhe: tickets' primary, mail's standby; git's standby once its writes move to vienna (not yet: no instance).
const KARLSRUHE = ["mail-ro:read-only", "tickets:read-write"];

test("each site runs one instance per service and access mode it answers, on its own loopback port", () => {
  const projects = (name: string) =>
    workloadInstances(footprint, siteServices(footprint, sites, name)).map((i) => `${i.project}:${i.access}`);
  // vienna: mail's primary; tickets' standby (read-only); git moving here with reads switched (read-only).
  assert.deepEqual(projects("vienna"), ["git-ro:read-only", "mail:read-write", "tickets-ro:read-only"]);
  assert.deepEqual(projects("karlsruhe"), KARLSRUHE);
  // Ports: one per service and mode across the footprint, so a service keeps its port wherever it runs.
  const ports = new Map<string, number>();
  for (const s of sites)
    for (const i of workloadInstances(footprint, siteServices(footprint, sites, s.name))) {
      const known = ports.get(i.project);
      if (known !== undefined) assert.equal(i.upstreamPort, known, `${i.project} has one port everywhere`);
      ports.set(i.project, i.upstreamPort);
      assert.ok(i.upstreamPort >= UPSTREAM_PORT_BASE && i.upstreamPort < 32768);
    }
  assert.equal(new Set(ports.values()).size, ports.size, "no two instances share a port");
});

test("compose sites get a project per instance on every virtualization host; Kubernetes sites get none", () => {
  for (const s of sites) {
    for (const host of s.hosts.filter((h) => h.role === "virtualization")) {
      const projects = files(s.name, host.name).filter((f) => f.path.startsWith(`${COMPOSE_DIR}/`));
      if (s.virtualization.runtime === "kubernetes") assert.equal(projects.length, 0, `${host.name}: the cluster runs the workloads`);
      else
        assert.deepEqual(
          projects.map((f) => f.path.split("/")[4]).sort(),
          workloadInstances(footprint, siteServices(footprint, sites, s.name)).map((i) => i.project),
        );
    }
  }
});

test("the read-only instance mounts its trees read-only and answers only through loopback; secrets stay out of the projects", () => {
  const vienna = files("vienna", "vie-virt-1");
  const project = (name: string) => parse(vienna.find((f) => f.path === `${COMPOSE_DIR}/${name}/compose.yaml`)!.content);
  const tickets = project("tickets-ro");
  const app = tickets.services.app;
  assert.equal(app.environment.STANDORT_ACCESS, "read-only");
  assert.equal(app.environment.ZAMMAD_READ_ONLY, "true", "the footprint's read-only switch is set");
  assert.ok(app.volumes.every((v: { read_only: boolean }) => v.read_only === true));
  assert.match(tickets.volumes.attachments.driver_opts.o, /^addr=10\.30\.1\.5,.*,ro$/);
  assert.equal(tickets.volumes.attachments.driver_opts.device, ":/srv/tickets/attachments");
  assert.ok(
    app.ports.every((p: string) => p.startsWith("127.0.0.1:")),
    "the serving port is on loopback only",
  );
  const mail = project("mail");
  assert.equal(mail.services.webmail.environment.STANDORT_ACCESS, "read-write");
  assert.equal(mail.services.webmail.environment.ROUNDCUBEMAIL_READ_ONLY, undefined);
  assert.deepEqual(mail.services.sieve.ports, ["4190:4190/tcp"]);
  // Secrets: only in the service's env file, which is secret and names where its values come from.
  for (const f of vienna.filter((x) => x.path.startsWith(`${COMPOSE_DIR}/`))) assert.doesNotMatch(f.content, /serviceSecrets|PASSWORD=/);
  // Each container reads only its own secrets: webmail's file holds its two, sieve (no secrets) gets none.
  assert.deepEqual(mail.services.webmail.env_file, [`${SECRETS_DIR}/mail/webmail.env`]);
  assert.equal(mail.services.sieve.env_file, undefined);
  assert.equal(vienna.filter((f) => f.path.startsWith(`${SECRETS_DIR}/mail/`)).length, 1);
  const env = vienna.find((f) => f.path === `${SECRETS_DIR}/mail/webmail.env`)!;
  assert.equal(env.secret, true);
  assert.equal(env.mode, "0600");
  assert.match(env.content, /^ROUNDCUBEMAIL_DB_PASSWORD=\(secret from standort:serviceSecrets\.mail\.database-password\)$/m);
  assert.match(env.content, /^ROUNDCUBEMAIL_DES_KEY=\(secret from standort:serviceSecrets\.mail\.session-key\)$/m);
});

test("a dollar sign in an environment value or a command reaches the container as written (Compose interpolation escaped)", (t) => {
  const raw = parse(readFileSync("sites/footprint.yaml", "utf8"));
  const webmail = raw.services.find((s: { name: string }) => s.name === "mail").workload.containers[0];
  webmail.environment.AB = "pa$$word ${HOME} $x";
  webmail.command = ["sh", "-c", "echo $HOME"];
  const mutated = validateFootprint(raw, sites).footprint!;
  const file = planHostFiles(site("vienna"), sites, mutated)
    .find((h) => h.host === "vie-virt-1")!
    .files.find((f) => f.path === `${COMPOSE_DIR}/mail/compose.yaml`)!;
  assert.equal(parse(file.content).services.webmail.environment.AB, "pa$$$$word $${HOME} $$x");
  if (!requireTool(t, "docker-compose", "sh")) return;
  // docker-compose interpolates the file before it reaches the engine: nothing of this shell's environment gets in
  // (`config` prints the result, keeping `$$` escaped, which the container receives as one `$`).
  const local = join(dir, "dollar.yaml");
  writeFileSync(local, file.content.replaceAll(SECRETS_DIR, dir));
  execFileSync("sh", ["-c", `mkdir -p "${dir}/mail" && : > "${dir}/mail/webmail.env"`]);
  const resolved = parse(
    execFileSync("docker-compose", ["-f", local, "config"], { encoding: "utf8", env: { ...process.env, HOME: "/nowhere", x: "leak" } }),
  );
  assert.equal(resolved.services.webmail.environment.AB, "pa$$$$word $${HOME} $$x");
  assert.deepEqual(resolved.services.webmail.command, ["sh", "-c", "echo $$HOME"]);
  assert.doesNotMatch(JSON.stringify(resolved), /nowhere|leak/);
});

test("every rendered Compose project passes docker-compose config, and a broken one is rejected", (t) => {
  if (!requireTool(t, "docker-compose", "sh", "sed")) return;
  const projects = sites.flatMap((s) =>
    s.hosts
      .filter((h) => h.role === "virtualization")
      .slice(0, 1)
      .flatMap((h) => files(s.name, h.name).filter((f) => f.path.startsWith(`${COMPOSE_DIR}/`))),
  );
  assert.ok(projects.length >= 5, "both compose sites render their projects");
  for (const f of projects) {
    const result = check(f, f.content);
    assert.equal(result.code, 0, `${f.path}: ${result.output}`);
  }
  const sample = projects[0];
  const broken = [
    sample.content.replace(/source: [a-z0-9-]+/, "source: undeclared"),
    sample.content.replace(/ {4}image:/, "    imgae:"),
    sample.content.replace(/read_only: (true|false)/, "read_only: perhaps"),
  ];
  for (const content of broken) assert.notEqual(check(sample, content).code, 0, "docker-compose refuses a broken project");
});

test("the ingress listens on 8443 and 8444, routes each name by SNI to its instance, and passes HAProxy's check", (t) => {
  const vienna = files("vienna", "vie-virt-2");
  const ingress = vienna.find((f) => f.path === "/etc/haproxy/haproxy.cfg")!;
  assert.match(ingress.content, /frontend ingress_rw\n\tbind :8443 ssl crt \/etc\/haproxy\/ingress\//);
  assert.match(ingress.content, /frontend ingress_ro\n\tbind :8444 ssl crt \/etc\/haproxy\/ingress\//);
  const rw = ingress.content.split("frontend ingress_ro")[0];
  assert.match(rw, /use_backend mail if \{ ssl_fc_sni -i mail\.example\.com \}/);
  assert.doesNotMatch(rw, /tickets/, "a read-only instance is never reached on the read-write port");
  assert.match(ingress.content, /backend tickets-ro\n\tmode http\n\tserver tickets-ro 127\.0\.0\.1:\d+ check/);
  // http-request rules run before use_backend: a refusal in a frontend would answer every request with 421.
  for (const frontend of ingress.content.split(/\n(?=frontend |backend )/).filter((b) => b.startsWith("frontend ")))
    assert.doesNotMatch(frontend, /http-request (return|deny)/, "the frontend refuses nothing before routing");
  assert.match(
    ingress.content,
    /default_backend standort_misdirected[\s\S]*backend standort_misdirected\n\tmode http\n\thttp-request return status 421/,
  );
  if (!requireTool(t, "haproxy", "openssl", "sh")) return;
  const ok = check(ingress, ingress.content);
  assert.equal(ok.code, 0, ok.output);
  assert.notEqual(check(ingress, ingress.content.replace("mode http\n\toption forwardfor", "mode htp\n\toption forwardfor")).code, 0);
  assert.notEqual(check(ingress, ingress.content.replace(/use_backend mail/, "use_backend nowhere")).code, 0);
  // The fallback certificate program: syntax, and the names it covers.
  const script = vienna.find((f) => f.path === "/usr/local/sbin/standort-ingress-cert")!;
  assert.equal(check(script, script.content).code, 0);
  assert.match(
    script.content,
    /subjectAltName=DNS:vie-virt-2,DNS:git\.example\.com,DNS:mail\.example\.com,DNS:support\.example\.com,DNS:tickets-at\.standby\.example\.net/,
  );
  // The drop-in replaces the packaged reload list, so the certificates are in place before HAProxy reloads them.
  const dropIn = vienna.find((f) => f.path === "/etc/systemd/system/haproxy.service.d/standort-ingress.conf")!;
  assert.deepEqual(
    dropIn.content.split("\n").filter((l) => l.startsWith("ExecReload=")),
    [
      "ExecReload=",
      "ExecReload=/usr/local/sbin/standort-ingress-cert",
      "ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS",
      "ExecReload=/bin/kill -USR2 $MAINPID",
    ],
  );
});

test("the footprint refuses workloads that are not pinned, not served, or not backed by the service's trees", () => {
  const raw = parse(readFileSync("sites/footprint.yaml", "utf8"));
  const problems = (change: (s: Record<string, any>) => void) => {
    const copy = structuredClone(raw);
    change(copy.services.find((s: { name: string }) => s.name === "mail"));
    const result = FootprintSchema.safeParse(copy);
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };
  assert.deepEqual(
    problems(() => undefined),
    [],
  );
  assert.match(
    problems((s) => (s.workload.containers[0].image = "registry.example.net/mail/roundcube:1.6.6")).join("\n"),
    /containers\.0\.image: must be an image pinned by digest/,
  );
  assert.match(
    problems((s) => delete s.workload.containers[0].port).join("\n"),
    /workload\.containers: exactly one container must have a port/,
  );
  assert.match(problems((s) => (s.workload.containers[1].port = 9000)).join("\n"), /exactly one container must have a port .*; 2 have one/);
  assert.match(
    problems((s) => (s.workload.containers[0].volumes[0].tree = "mailboxes")).join("\n"),
    /volumes\.0\.tree: mailboxes is not a file tree of mail/,
  );
  assert.match(problems((s) => (s.workload.readOnly.environment = {})).join("\n"), /readOnly\.environment: must set at least one variable/);
  assert.match(
    problems((s) => (s.workload.containers[0].environment.ROUNDCUBEMAIL_DES_KEY = "x")).join("\n"),
    /secrets\.ROUNDCUBEMAIL_DES_KEY: .* also set in environment/,
  );
  assert.match(problems((s) => (s.workload.containers[1].publish[0].hostPort = 8443)).join("\n"), /hostPort/);
  // A read-only variable that would replace a secret, the platform's own variables, a folder mounted twice, the kernel's trees.
  assert.match(
    problems((s) => (s.workload.readOnly.environment.ROUNDCUBEMAIL_DB_PASSWORD = "x")).join("\n"),
    /readOnly\.environment\.ROUNDCUBEMAIL_DB_PASSWORD: ROUNDCUBEMAIL_DB_PASSWORD is filled from secret database-password in container webmail/,
  );
  assert.match(
    problems((s) => (s.workload.readOnly.environment.STANDORT_ACCESS = "read-write")).join("\n"),
    /readOnly\.environment\.STANDORT_ACCESS: STANDORT_\* variables are set by the platform/,
  );
  assert.match(
    problems((s) => (s.workload.containers[0].environment.STANDORT_SERVICE = "x")).join("\n"),
    /containers\.0\.environment\.STANDORT_SERVICE: STANDORT_\*/,
  );
  assert.match(
    problems((s) => (s.workload.containers[1].volumes[1].mount = "/var/vmail")).join("\n"),
    /containers\.1\.volumes\.1\.mount: \/var\/vmail is mounted twice in sieve/,
  );
  assert.match(
    problems((s) => (s.workload.containers[1].volumes[1].mount = "/proc/x")).join("\n"),
    /volumes\.1\.mount: must not be at or under \/\{proc,sys,dev,run\}/,
  );
  assert.match(
    problems((s) => (s.workload.containers[1].volumes[1].mount = "/etc/../proc")).join("\n"),
    /volumes\.1\.mount: must not contain \. or \.\. segments/,
  );
  const twice = structuredClone(raw);
  twice.services.find((s: { name: string }) => s.name === "tickets").workload.containers[0].publish = [{ port: 4190, hostPort: 4190 }];
  const result = FootprintSchema.safeParse(twice);
  assert.equal(result.success, false);
  assert.match((result.error?.issues ?? []).map((i) => i.message).join("\n"), /tcp\/4190 is already published by mail\/sieve/);
});

test("the stack refuses to run a service whose secrets are not configured, and ships the configured ones only as secrets", async () => {
  const { config, secretKeys } = readStackConfig("vienna");
  const values = {
    mail: { "database-password": "mail-db-Secret-1", "session-key": "mail-session-Secret-2" },
    tickets: { "database-password": "tickets-Secret-3" },
  };
  const run = (secrets: unknown) =>
    runUnderMocks({
      stack: "vienna",
      config: { ...config, "standort:serviceSecrets": JSON.stringify(secrets) },
      secretKeys: [...secretKeys, "standort:serviceSecrets"],
      program: () => locationStack(),
    });
  // A value for a service or secret the footprint does not know is named, not ignored.
  await assert.rejects(run({ ...values, mial: { "database-password": "x" }, tickets: { "database-pasword": "y" } }), (error: Error) => {
    assert.match(error.message, /standort:serviceSecrets: mial is not a service of the footprint/);
    assert.match(error.message, /standort:serviceSecrets: tickets\.database-pasword is not a secret tickets's containers read/);
    return true;
  });
  // git (read-only here, migrating) needs its two secrets as well.
  await assert.rejects(run(values), (error: Error) => {
    assert.match(error.message, /standort:serviceSecrets: git\.database-password, git\.secret-key must be set: vienna runs these services/);
    return true;
  });
  const complete = { ...values, git: { "database-password": "git-Secret-4", "secret-key": "git-Secret-5" } };
  const result = await run(complete);
  const everything = JSON.stringify(result);
  for (const secret of ["mail-db-Secret-1", "mail-session-Secret-2", "tickets-Secret-3", "git-Secret-4", "git-Secret-5"])
    assert.ok(!everything.includes(secret), `${secret} appears only masked`);
  assert.ok(everything.includes("/etc/standort/secrets/mail/webmail.env"), "the env file is delivered");
});

test("a service that publishes ports runs only on compose sites: the footprint names the Kubernetes site that would run it", () => {
  const raw = parse(readFileSync("sites/footprint.yaml", "utf8"));
  const groupware = raw.services.find((s: { name: string }) => s.name === "groupware");
  groupware.workload.containers[0].publish = [{ port: 143, hostPort: 1143 }];
  const problems = validateFootprint(raw, sites).problems;
  assert.deepEqual(
    problems.filter((p) => /publish/.test(p)),
    ["primary frankfurt runs Kubernetes", "standby helsinki runs Kubernetes"].map(
      (where) =>
        `sites/footprint.yaml: services[0] (groupware): workload: app publish ports, but ${where}, which publishes none on its hosts: serve the service from compose sites or drop publish`,
    ),
  );
  // mail publishes 4190 between two compose sites: no problem.
  assert.deepEqual(validateFootprint(parse(readFileSync("sites/footprint.yaml", "utf8")), sites).problems, []);
});

test("a Kubernetes site's first run forms the cluster and leaves what runs inside it until its kubeconfig is set", async () => {
  const { config, secretKeys } = readStackConfig("helsinki");
  const secrets = {
    git: { "database-password": "a", "secret-key": "b" },
    webhosting: { "database-password": "c" },
    groupware: { "database-password": "d" },
  };
  const run = (withKubeconfig: boolean) =>
    runUnderMocks({
      stack: "helsinki",
      config: Object.fromEntries(
        Object.entries({ ...config, "standort:serviceSecrets": JSON.stringify(secrets) }).filter(
          ([k]) => withKubeconfig || k !== "standort:kubeconfig",
        ),
      ),
      secretKeys: [...secretKeys, "standort:serviceSecrets"],
      program: () => locationStack(),
    });
  const count = (r: Awaited<ReturnType<typeof run>>, type: string) => r.resources.filter((x) => x.type === type).length;
  const first = await run(false);
  assert.equal(first.outputs.clusterPending, "set standort:kubeconfig from the cluster's admin.conf and run again");
  assert.equal(count(first, "standort:kubernetes:ClusterCredentials"), 1, "the cluster's secrets are made on the first run");
  assert.ok(
    first.resources.some((r) => r.name === "helsinki-cfg-hel-virt-1-tx"),
    "the nodes get their kubeadm files",
  );
  for (const type of [
    "standort:kubernetes:Workloads",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:batch/v1:CronJob",
    "pulumi:providers:kubernetes",
  ])
    assert.equal(count(first, type), 0, `${type} waits for the kubeconfig`);
  const second = await run(true);
  assert.equal(second.outputs.clusterPending, undefined);
  assert.equal(count(second, "kubernetes:apps/v1:Deployment"), 3);
  assert.equal(count(second, "kubernetes:batch/v1:CronJob"), 6);
});
