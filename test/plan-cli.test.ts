import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main, parsePlanFlags } from "../scripts/plan";
import { planStack } from "../lib/preview/run-stack";
import { InputError } from "../lib/model/validate";
import { parseStackConfig } from "../lib/model/stack-config";
import { PlanSnapshot, diffPlans, lineChanges, renderDiff } from "../lib/preview/plan";
import { absentSiteName, knownSites, tempSites } from "./helpers/sites";
import { captured } from "./helpers/cli";

const run = (argv: string[]) => captured(main, argv);

for (const location of ["frankfurt", "karlsruhe", "vienna", "helsinki"]) {
  test(`plan ${location}: prints the tree, counts and address plan of the real stack program`, async () => {
    const { code, out, err } = await run([location]);
    assert.equal(code, 0, err.join("\n"));
    const text = out.join("\n");
    assert.match(text, new RegExp(`^Previewing standort/${location} `, "m"));
    assert.match(text, new RegExp(`^  \\+ standort:Site  ${location}$`, "m"));
    const recorded = (await planStack(location)).resources.length;
    assert.ok(out.includes(`  ${recorded} resources`), `count line for ${recorded}`);
    const dmz = out.find((l) => l.startsWith("  dmz "));
    assert.match(dmz ?? "", /^ {2}dmz +10\.\d+\.\d+\.0\/24 +10\.\d+\.\d+\.1 /);
  });
}

test("plan helsinki shows the Hetzner Cloud provider with its token as [secret]", async () => {
  const { out } = await run(["helsinki"]);
  assert.ok(out.includes("  + pulumi:hcloud  hcloud  token=[secret]"), out.slice(0, 12).join("\n"));
});

test("a bad site file stops the plan before any resource is registered, exit 2, one line per problem", async () => {
  const sites = tempSites();
  try {
    sites.edit("vienna", (d) => (d.public.prefix = "198.18.4.0/24"));
    const unknown = absentSiteName(sites.dir);
    sites.edit("frankfurt", (d) => (d.partner = unknown));
    const { code, err } = await run(["vienna", "--sites", sites.dir]);
    assert.equal(code, 2);
    assert.deepEqual(err, [
      "sites/vienna.yaml: public.prefix: 198.18.4.0/24 must be a /23",
      `sites/frankfurt.yaml: partner: ${unknown} does not exist (known sites: ${knownSites(sites.dir)})`,
      "2 problem(s); nothing was planned",
    ]);
    const registered: string[] = [];
    await assert.rejects(planStack("vienna", { sitesDir: sites.dir, onRegister: (t, n) => registered.push(`${t} ${n}`) }), InputError);
    assert.deepEqual(registered, []);
  } finally {
    sites.dispose();
  }
});

test("a YAML syntax error names the file and line", async () => {
  const sites = tempSites();
  try {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(sites.dir, "vienna.yaml"), "name: vienna\ncode: [vie\n");
    const { code, err } = await run(["vienna", "--sites", sites.dir]);
    assert.equal(code, 2);
    assert.match(err[0], /^sites\/vienna\.yaml: line \d+: /);
  } finally {
    sites.dispose();
  }
});

test("CLI flags are validated: unknown flag, missing location, --expect-no-changes without --diff", () => {
  assert.throws(
    () => parsePlanFlags(["vienna", "--bogus"]),
    (e: InputError) => /^plan: --bogus: unknown flag \(known: --json, /.test(e.problems[0]),
  );
  assert.throws(
    () => parsePlanFlags([]),
    (e: InputError) => e.problems[0] === "plan: location: name a location (npm run plan -- vienna) or pass --footprint",
  );
  assert.throws(
    () => parsePlanFlags(["vienna", "--expect-no-changes"]),
    (e: InputError) => e.problems[0] === "plan: expect-no-changes: only makes sense with --diff",
  );
  assert.throws(
    () => parsePlanFlags(["Vienna!"]),
    (e: InputError) => e.problems[0].startsWith("plan: location: must be lower-case letters"),
  );
});

test("--json writes the full plan, byte-identical across runs", async () => {
  const dir = mkdtempSync(join(tmpdir(), "standort-plan-"));
  try {
    await run(["helsinki", "--json", join(dir, "a.json")]);
    await run(["helsinki", "--json", join(dir, "b.json")]);
    const a = readFileSync(join(dir, "a.json"), "utf8");
    assert.equal(a, readFileSync(join(dir, "b.json"), "utf8"));
    const plan = JSON.parse(a) as PlanSnapshot;
    assert.equal(plan.stack, "helsinki");
    const network = plan.resources.find((r) => r.type === "hcloud:index/network:Network")!;
    assert.equal(network.inputs.ipRange, "10.40.0.0/16");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--diff after editing a site file shows what changed, and --expect-no-changes fails on it", async () => {
  const sites = tempSites();
  const plans = mkdtempSync(join(tmpdir(), "standort-plans-"));
  try {
    const base = ["helsinki", "--sites", sites.dir, "--plans", plans];
    assert.equal((await run([...base, "--update"])).code, 0);
    const same = await run([...base, "--diff", "--expect-no-changes"]);
    assert.equal(same.code, 0);
    assert.ok(same.out.includes("  no changes"));

    sites.edit("helsinki", (d) => (d.network.extraSegments = [{ name: "backup", prefixLength: 26, members: ["storage"] }]));
    const changed = await run([...base, "--diff", "--expect-no-changes"]);
    assert.equal(changed.code, 1);
    const diff = changed.out.slice(changed.out.findIndex((l) => l.startsWith("Diff against")) + 1);
    assert.ok(diff.includes("  + hcloud:NetworkSubnet  helsinki-net-backup"), diff.join("\n"));
    assert.ok(!diff.some((l) => l.startsWith("  - ")), "nothing removed");
    assert.ok(!diff.some((l) => /^ {2}~ hcloud:NetworkSubnet/.test(l)), "no existing subnet changed");
  } finally {
    sites.dispose();
    rmSync(plans, { recursive: true, force: true });
  }
});

test("diffPlans reports added, removed and changed properties by URN", () => {
  const r = (urn: string, inputs: Record<string, unknown>) => ({ urn, type: "t:m:T", name: urn.split("::").pop()!, inputs });
  const before: PlanSnapshot = {
    stack: "s",
    resources: [r("urn:pulumi:s::p::t:m:T::a", { x: 1, y: [1, 2] }), r("urn:pulumi:s::p::t:m:T::b", {})],
    outputs: {},
  };
  const after: PlanSnapshot = {
    stack: "s",
    resources: [r("urn:pulumi:s::p::t:m:T::a", { x: 1, y: [1, 3] }), r("urn:pulumi:s::p::t:m:T::c", {})],
    outputs: { o: 1 },
  };
  const diff = diffPlans(before, after);
  assert.deepEqual(diff.added, ["urn:pulumi:s::p::t:m:T::c"]);
  assert.deepEqual(diff.removed, ["urn:pulumi:s::p::t:m:T::b"]);
  assert.deepEqual(diff.changed, [{ urn: "urn:pulumi:s::p::t:m:T::a", changes: [{ path: "inputs.y[1]", before: 2, after: 3 }] }]);
  assert.deepEqual(renderDiff(diff), [
    "+ t:T  c",
    "- t:T  b",
    "~ t:T  a",
    "    ~ inputs.y[1]: 2 => 3",
    "~ output o: undefined => 1",
    "1 to add, 1 to change, 1 to delete, 1 output change(s)",
  ]);
});

test("--footprint prints placement, shares and a Mermaid diagram; --mermaid writes it as Markdown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "standort-fp-"));
  try {
    const { code, out } = await run(["--footprint", "--mermaid", join(dir, "footprint.md")]);
    assert.equal(code, 0);
    assert.ok(out.includes("violations: none"));
    assert.ok(
      out.some((l) => /^ {2}provider +ionos +2\/5 +40% +groupware, tickets$/.test(l)),
      "share of primaries per provider",
    );
    assert.equal(out[out.indexOf("```mermaid") + 1], "flowchart LR");
    const markdown = readFileSync(join(dir, "footprint.md"), "utf8");
    assert.match(markdown, /^# standort footprint\n\n```mermaid\nflowchart LR\n[\s\S]*\n```\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a footprint policy violation stops every location plan, exit 2", async () => {
  const sites = tempSites();
  try {
    const { readFileSync: read, writeFileSync } = await import("node:fs");
    const path = join(sites.dir, "footprint.yaml");
    // The mail service's standby moves into its primary's country.
    writeFileSync(path, read(path, "utf8").replace("primary: vienna\n    standby: karlsruhe", "primary: vienna\n    standby: vienna"));
    const { code, err } = await run(["helsinki", "--sites", sites.dir]);
    assert.equal(code, 2);
    assert.ok(
      err.some((l) => l.startsWith("sites/footprint.yaml: services[1] (mail): ")),
      err.join("\n"),
    );
    assert.equal(err[err.length - 1], `${err.length - 1} problem(s); nothing was planned`);
  } finally {
    sites.dispose();
  }
});

test("--files writes every host's files, grouped by host, the same bytes the stack delivers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "standort-files-"));
  try {
    const { code, out } = await run(["vienna", "--files", dir]);
    assert.equal(code, 0);
    assert.ok(out.some((l) => /^Host files \(placeholder secrets\), \d+ files for 9 hosts, written to /.test(l)));
    const haproxy = readFileSync(join(dir, "vie-proxy-1", "etc", "haproxy", "haproxy.cfg"), "utf8");
    // The footprint's services at vienna: mail is answered read-write, tickets read-only on its standby name.
    assert.match(haproxy, /mail\.example\.com/);
    assert.match(haproxy, /tickets-at\.standby\.example\.net/);
    const timer = readFileSync(join(dir, "vie-stor-1", "etc", "systemd", "system", "standort-mail-files-vmail-to-karlsruhe.timer"), "utf8");
    assert.match(timer, /^OnCalendar=\*-\*-\* \*:00\/05:00$/m);
    const { readdirSync } = await import("node:fs");
    assert.deepEqual(readdirSync(dir).sort(), [
      "vie-fw-1",
      "vie-fw-2",
      "vie-proxy-1",
      "vie-proxy-2",
      "vie-stor-1",
      "vie-stor-2",
      "vie-virt-1",
      "vie-virt-2",
      "vie-virt-3",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a changed file content is shown as the lines it removes and adds", () => {
  const before = "global\n  maxconn 4096\nbackend mail\n  server a 10.0.0.1:8443\n";
  const after = "global\n  maxconn 4096\nbackend mail-ro\n  server a 10.0.0.1:8444\n";
  assert.deepEqual(lineChanges(before, after), [
    "- backend mail",
    "-   server a 10.0.0.1:8443",
    "+ backend mail-ro",
    "+   server a 10.0.0.1:8444",
  ]);
  const many = Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n");
  const changed = lineChanges(many, many.replace(/line/g, "row"));
  assert.equal(changed.length, 13);
  assert.equal(changed[12], "… 48 more changed lines");
});

test("stack config: a secret committed in plain text is refused, and so is a provider environment a shell would misread", () => {
  assert.throws(
    () =>
      parseStackConfig(
        { "standort:site": "vienna", "standort:sshPrivateKey": "-----BEGIN KEY-----" },
        "stacks/Pulumi.vienna.yaml",
        () => false,
      ),
    (e: InputError) =>
      e.problems.join("\n") ===
      "stacks/Pulumi.vienna.yaml: standort:sshPrivateKey: is stored in plain text: rotate it and set it with pulumi config set --secret standort:sshPrivateKey",
  );
  assert.throws(
    () =>
      parseStackConfig(
        { "standort:site": "vienna", "standort:providerEnv": JSON.stringify({ FAILOVER_MOVE_COMMAND: "it's" }) },
        "stacks/Pulumi.vienna.yaml",
      ),
    (e: InputError) =>
      e.problems.join("\n") ===
      "stacks/Pulumi.vienna.yaml: standort:providerEnv.FAILOVER_MOVE_COMMAND: values may not hold a single quote or a line break",
  );
  assert.throws(
    () => parseStackConfig({ "standort:site": "vienna", "standort:colour": "blue" }, "stacks/Pulumi.vienna.yaml"),
    (e: InputError) =>
      e.problems.join("\n") ===
      "stacks/Pulumi.vienna.yaml: standort:colour: unknown key (check the spelling; see the stack configuration table in README.md)",
  );
});

test("a site whose takeover moves an address needs the means to move it before anything is planned", async () => {
  const stacks = mkdtempSync(join(tmpdir(), "standort-stacks-"));
  try {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(stacks, "Pulumi.vienna.yaml"), "config:\n  standort:site: vienna\n");
    const registered: string[] = [];
    await assert.rejects(
      planStack("vienna", { stacksDir: stacks, onRegister: (t, n) => registered.push(`${t} ${n}`) }),
      (e: InputError) =>
        e.problems.join("\n") ===
        "stacks/Pulumi.vienna.yaml: standort:providerEnv: FAILOVER_MOVE_COMMAND is required: vienna's pairs move addresses, and netcup has no API the library drives",
    );
    assert.deepEqual(registered, []);
    // IONOS moves failover IPs to the NIC of the member that takes over: the data center, the LAN and every
    // moving member's NIC are named, each one missing is one line.
    writeFileSync(
      join(stacks, "Pulumi.karlsruhe.yaml"),
      "config:\n  standort:site: karlsruhe\n  standort:providerEnv:\n    IONOS_LAN_ID: '2'\n    IONOS_NIC_ID_FKB_FW_1: nic-fw-1\n",
    );
    const registeredAtKarlsruhe: string[] = [];
    await assert.rejects(
      planStack("karlsruhe", { stacksDir: stacks, onRegister: (t, n) => registeredAtKarlsruhe.push(`${t} ${n}`) }),
      (e: InputError) =>
        e.problems.join("\n") ===
        ["IONOS_DATACENTER_ID", "IONOS_NIC_ID_FKB_FW_2", "IONOS_NIC_ID_FKB_PROXY_1", "IONOS_NIC_ID_FKB_PROXY_2"]
          .map(
            (key) =>
              `stacks/Pulumi.karlsruhe.yaml: standort:providerEnv: ${key} is required: karlsruhe's pairs move ionos failover IPs through the provider's API, which needs these ids`,
          )
          .join("\n"),
    );
    assert.deepEqual(registeredAtKarlsruhe, []);
  } finally {
    rmSync(stacks, { recursive: true, force: true });
  }
});
