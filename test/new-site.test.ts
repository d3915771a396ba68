// npm run new-site: a new location's files from the pools, the partner's edit, refusals (exit 2, the flag
// named, nothing written), the ledger that never hands space out twice, and the blame of the newer site.
import test from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { format } from "prettier";
import { main, excerpt, parseNewSiteFlags, planNewSite } from "../scripts/new-site";
import { main as planMain } from "../scripts/plan";
import { REPOSITORY_ROOT, SITES_DIR, readSiteDocuments } from "../lib/model/load";
import { SiteFileSchema } from "../lib/model/schema";
import { validateSites } from "../lib/model/validate";
import { cidr, overlaps } from "../lib/net/ipv4";
import { PoolsFileSchema, allocate, firstFree, ledgerOrder } from "../lib/model/pools";
import { deriveCode, partnerEdit, providerChoices } from "../lib/model/scaffold";
import { ADAPTERS, PROVIDER_KINDS } from "../lib/providers/registry";
import { captured } from "./helpers/cli";

/** A temporary copy of the repository's sites/ and stacks/ (plans included), removed after the test. */
function tempRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), "standort-new-site-"));
  cpSync(join(REPOSITORY_ROOT, "sites"), join(root, "sites"), { recursive: true });
  cpSync(join(REPOSITORY_ROOT, "stacks"), join(root, "stacks"), {
    recursive: true,
    filter: (src) => !src.endsWith(".ts"),
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** Every file under the root with its text, to prove a refused run wrote nothing. */
function snapshot(root: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of ["sites", "stacks"])
    for (const f of readdirSync(join(root, dir), { recursive: true, encoding: "utf8" }).sort()) {
      const path = join(root, dir, f);
      if (/\.(ya?ml|json)$/.test(f)) files.set(`${dir}/${f}`, readFileSync(path, "utf8"));
    }
  return files;
}

const run = (argv: string[]) => captured(main, argv);
const yamlOf = (root: string, file: string) => parse(readFileSync(join(root, file), "utf8")) as Record<string, any>;

/** The partners branch lets a site stand by for several (`standbyFor`); without it no existing site can take a new partner. */
const partnersReady = "standbyFor" in SiteFileSchema.shape;
const needsPartners = partnersReady ? {} : { skip: "needs standbyFor (the partners branch)" };

test("the pools file is no site file, and its ledger holds the committed sites' space", () => {
  const read = readSiteDocuments();
  assert.ok(!read.siteNames.includes("pools"));
  assert.deepEqual(read.age, ["frankfurt", "helsinki", "karlsruhe", "vienna", "falkenstein"]);
  const pools = PoolsFileSchema.parse(parse(readFileSync(join(SITES_DIR, "pools.yaml"), "utf8")));
  for (const { file, data } of read.documents) {
    const site = SiteFileSchema.parse(data);
    const entry = pools.ledger.find((e) => e.site === site.name);
    assert.equal(entry?.supernet, site.network.supernet, file);
    assert.equal(entry?.prefix, site.public.mode === "own-prefix" ? site.public.prefix : undefined, file);
    assert.ok(
      pools.supernets.some((r) => overlaps(cidr(r), cidr(site.network.supernet))),
      `${file}: its supernet lies in a pool`,
    );
  }
});

test("allocation is first fit, deterministic, and skips what site files and the ledger hold", () => {
  const held = [{ range: cidr("10.0.0.0/16"), by: "a" }];
  assert.equal(firstFree(["10.0.0.0/14"], 16, held), "10.1.0.0/16");
  assert.equal(firstFree(["10.0.0.0/16"], 16, held), undefined);
  assert.equal(firstFree(["10.0.0.0/24", "10.0.0.0/14"], 16, held), "10.1.0.0/16", "a range smaller than the block is skipped");
  const pools = PoolsFileSchema.parse({
    supernets: ["10.0.0.0/15"],
    prefixes: ["198.18.0.0/22"],
    placeholders: ["198.19.0.0/23"],
    ledger: [{ site: "gone", supernet: "10.0.0.0/16", prefix: "198.18.0.0/23" }],
  });
  const a = allocate(pools, [], { ownPrefix: true, placeholders: true });
  assert.deepEqual(a, { supernet: "10.1.0.0/16", prefix: "198.18.2.0/23", placeholders: "198.19.0.0/24", problems: [] });
  assert.deepEqual(allocate(pools, [], { ownPrefix: true, placeholders: true }), a, "same input, same answer");
  const exhausted = PoolsFileSchema.parse({ ...pools, ledger: [...pools.ledger, { site: "xy", supernet: "10.1.0.0/16" }] });
  assert.deepEqual(allocate(exhausted, [], { ownPrefix: false, placeholders: false }).problems, [
    "sites/pools.yaml: supernets: 10.0.0.0/15 has no free /16 left (site files and ledger hold the rest): add a private range to supernets",
  ]);
  assert.deepEqual(ledgerOrder([{ site: "a" }, { site: "b" }, { site: "a" }]), ["b", "a"], "a name given out again counts from then");
});

test("the pools schema refuses shared space, a pool in the clusters' ranges and a ledger that gave space twice", () => {
  const result = PoolsFileSchema.safeParse({
    supernets: ["10.0.0.0/8"],
    prefixes: ["10.1.0.0/16"],
    placeholders: ["198.19.0.0/18"],
    ledger: [
      { site: "a", supernet: "10.10.0.0/16" },
      { site: "b", supernet: "10.10.0.0/16" },
    ],
  });
  assert.equal(result.success, false);
  const messages = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  assert.ok(
    messages.some((m) => /^supernets\.0: 10\.0\.0\.0\/8 overlaps 10\.244\.0\.0\/16/.test(m)),
    messages.join("\n"),
  );
  assert.ok(
    messages.some((m) => /^prefixes\.0: .*reserved range/.test(m)),
    messages.join("\n"),
  );
  assert.ok(
    messages.some((m) => /^prefixes\.0: 10\.1\.0\.0\/16 overlaps 10\.0\.0\.0\/8/.test(m)),
    messages.join("\n"),
  );
  assert.ok(
    messages.some((m) => /^ledger\.1\.supernet: 10\.10\.0\.0\/16 overlaps 10\.10\.0\.0\/16 of ledger\[0\] \(a\)/.test(m)),
    messages.join("\n"),
  );
});

test("the code comes from the name and avoids every other site's", () => {
  assert.equal(deriveCode("graz", new Set()), "gra");
  assert.equal(deriveCode("graz", new Set(["gra"])), "grz");
  assert.equal(deriveCode("graz", new Set(["gra", "grz", "gaz"])), "grb");
  assert.equal(deriveCode("new-york", new Set(["new"])), "ney");
});

test("the providers are the adapters' keys, each laid out by its adapter", () => {
  const choices = providerChoices();
  assert.deepEqual(
    choices.map((c) => c.flag),
    PROVIDER_KINDS,
  );
  for (const p of ["hcloud", "netcup", "ionos", "other"]) assert.ok(PROVIDER_KINDS.includes(p), p);
  for (const { flag, adapter } of choices) assert.equal(adapter, ADAPTERS[flag], flag);
});

test("the partner's file gains the new site with every comment and line of the rest kept", () => {
  const text = readFileSync(join(SITES_DIR, "vienna.yaml"), "utf8");
  const once = partnerEdit(text, "gmunden");
  assert.equal(once.change, "standbyFor");
  assert.equal(once.text, `${text}standbyFor: [gmunden]\n`);
  const twice = partnerEdit(once.text, "linz");
  assert.equal(twice.text, `${text}standbyFor: [gmunden, linz]\n`);
  assert.equal(partnerEdit(twice.text, "linz").change, "none");
  const lonely = partnerEdit(text.replace(/^partner: karlsruhe\n/m, ""), "gmunden");
  assert.equal(lonely.change, "partner");
  assert.equal(lonely.text, text.replace(/^partner: karlsruhe\n/m, "partner: gmunden\n"));
  const block = "name: x\npartner: y\nstandbyFor:\n  - a # first\nvrrpIdBase: 20\n";
  assert.equal(partnerEdit(block, "b").text, "name: x\npartner: y\nstandbyFor: [a, b]\nvrrpIdBase: 20\n");
  assert.deepEqual(excerpt("a\nb\nc\nd\n", "a\nb\nc\nd\ne\n"), ["  …", "  c", "  d", "+ e"]);
});

test("a clash between two site files is blamed on the newer site (the pools ledger's later allocation)", () => {
  const docs = readSiteDocuments().documents;
  const vienna = docs.find((d) => d.file === "sites/vienna.yaml")!;
  const copy = { file: "sites/gmunden.yaml", data: { ...(vienna.data as object), name: "gmunden", code: "grz" } };
  const names = [...docs.map((d) => /([^/]+)\.yaml$/.exec(d.file)![1]), "gmunden"];
  const address = (problems: string[]) => problems.find((p) => / is already vie-fw-1's address /.test(p));
  // gmunden is in no ledger: it is the newest, though its file name comes first.
  const absent = validateSites([...docs, copy], names, ["frankfurt", "helsinki", "karlsruhe", "vienna"]).problems;
  assert.match(
    address(absent) ?? "",
    /^sites\/gmunden\.yaml: provider\.hosts\[0\]\.address: 198\.19\.40\.11 is already vie-fw-1's address \(provider\.hosts\[0\]\.address of sites\/vienna\.yaml\)/,
  );
  assert.ok(
    absent.some((p) => p.startsWith("sites/gmunden.yaml: network.supernet: 10.30.0.0/16 overlaps 10.30.0.0/16 of sites/vienna.yaml")),
  );
  // A ledger where vienna came later blames vienna.
  const later = validateSites([...docs, copy], names, ["gmunden", "frankfurt", "helsinki", "karlsruhe", "vienna"]).problems;
  assert.ok(
    later.some((p) => p.startsWith("sites/vienna.yaml: network.supernet: 10.30.0.0/16 overlaps 10.30.0.0/16 of sites/gmunden.yaml")),
  );
});

test("the plan blames the copied site: vienna.yaml copied to gmunden.yaml", async (t) => {
  const root = tempRoot(t);
  writeFileSync(
    join(root, "sites", "gmunden.yaml"),
    readFileSync(join(SITES_DIR, "vienna.yaml"), "utf8").replace("name: vienna", "name: gmunden"),
  );
  const { code, err } = await captured(planMain, ["gmunden", "--sites", join(root, "sites"), "--stacks", join(root, "stacks")]);
  assert.equal(code, 2);
  assert.ok(err.length > 2);
  assert.ok(
    err.slice(0, -1).every((l) => l.startsWith("sites/gmunden.yaml: ")),
    err.filter((l) => !l.startsWith("sites/gmunden.yaml: ")).join("\n"),
  );
});

test(
  "new-site gmunden --provider netcup --country AT --partner helsinki --own-prefix writes both files, free space, and plans",
  needsPartners,
  async (t) => {
    const root = tempRoot(t);
    const { code, out, err } = await run([
      "gmunden",
      "--provider",
      "netcup",
      "--country",
      "AT",
      "--partner",
      "helsinki",
      "--own-prefix",
      "--root",
      root,
    ]);
    assert.equal(code, 0, err.join("\n"));
    assert.ok(out.includes("wrote sites/gmunden.yaml") && out.includes("wrote stacks/Pulumi.gmunden.yaml"), out.slice(0, 8).join("\n"));
    assert.ok(
      out.some((l) => /^Previewing standort\/gmunden /.test(l)),
      "the plan ran",
    );
    const text = readFileSync(join(root, "sites", "gmunden.yaml"), "utf8");
    assert.equal(text.split("\n")[0], "# yaml-language-server: $schema=./schema/site.schema.json");
    assert.equal(await format(text, { filepath: "gmunden.yaml", printWidth: 140 }), text, "Prettier-clean");
    const gmunden = SiteFileSchema.parse(parse(text));
    assert.equal(gmunden.code, "gmu");
    assert.equal(gmunden.partner, "helsinki");
    assert.equal(gmunden.provider.kind, "preprovisioned");
    if (gmunden.provider.kind === "preprovisioned") {
      assert.deepEqual(
        gmunden.provider.hosts.map((h) => h.name),
        ["gmu-fw-1", "gmu-fw-2", "gmu-proxy-1", "gmu-proxy-2", "gmu-stor-1", "gmu-stor-2", "gmu-virt-1", "gmu-virt-2", "gmu-virt-3"],
      );
      assert.equal(text.match(/# replace with the address the provider handed over$/gm)?.length, 9);
    }
    assert.equal(gmunden.public.mode, "own-prefix");
    const stack = readFileSync(join(root, "stacks", "Pulumi.gmunden.yaml"), "utf8");
    assert.match(stack, /^ {2}standort:site: gmunden$/m);
    assert.match(stack, /^ {4}FAILOVER_MOVE_COMMAND: /m);
    assert.deepEqual(yamlOf(root, "sites/helsinki.yaml").standbyFor, ["gmunden"]);
    // Nothing the new site holds overlaps another site's space or addresses.
    const others = readSiteDocuments(join(root, "sites")).documents.filter((d) => d.file !== "sites/gmunden.yaml");
    for (const d of others) {
      const site = SiteFileSchema.parse(d.data);
      assert.ok(!overlaps(cidr(site.network.supernet), cidr(gmunden.network.supernet)), d.file);
      if (site.public.mode === "own-prefix" && gmunden.public.mode === "own-prefix")
        assert.ok(!overlaps(cidr(site.public.prefix), cidr(gmunden.public.prefix)), d.file);
    }
    assert.deepEqual(yamlOf(root, "sites/pools.yaml").ledger.at(-1), {
      site: "gmunden",
      supernet: gmunden.network.supernet,
      prefix: (gmunden.public as { prefix: string }).prefix,
    });
    // Every other site still plans with the new one among them.
    for (const location of ["helsinki", "vienna"]) {
      const plan = await captured(planMain, [location, "--sites", join(root, "sites"), "--stacks", join(root, "stacks")]);
      assert.equal(plan.code, 0, plan.err.join("\n"));
    }

    // A second run gets the next free space; a deleted site's space is not handed out again.
    const second = await run(["linz", "--provider", "ionos", "--country", "AT", "--partner", "vienna", "--own-prefix", "--root", root]);
    assert.equal(second.code, 0, second.err.join("\n"));
    const linz = SiteFileSchema.parse(yamlOf(root, "sites/linz.yaml"));
    assert.notEqual(linz.network.supernet, gmunden.network.supernet);
    assert.ok(!overlaps(cidr(linz.network.supernet), cidr(gmunden.network.supernet)));
    unlinkSync(join(root, "sites", "linz.yaml"));
    unlinkSync(join(root, "stacks", "Pulumi.linz.yaml"));
    writeFileSync(
      join(root, "sites", "vienna.yaml"),
      readFileSync(join(root, "sites", "vienna.yaml"), "utf8").replace(/^standbyFor: \[linz\]\n/m, ""),
    );
    const third = await run(["salzburg", "--provider", "other", "--country", "AT", "--partner", "vienna", "--own-prefix", "--root", root]);
    assert.equal(third.code, 0, third.err.join("\n"));
    const salzburg = SiteFileSchema.parse(yamlOf(root, "sites/salzburg.yaml"));
    for (const held of [gmunden, linz]) {
      assert.ok(!overlaps(cidr(salzburg.network.supernet), cidr(held.network.supernet)), "supernet not reused");
      if (salzburg.public.mode === "own-prefix" && held.public.mode === "own-prefix")
        assert.ok(!overlaps(cidr(salzburg.public.prefix), cidr(held.public.prefix)), "prefix not reused");
    }
    assert.deepEqual(
      yamlOf(root, "sites/pools.yaml").ledger.map((e: { site: string }) => e.site),
      ["frankfurt", "helsinki", "karlsruhe", "vienna", "falkenstein", "gmunden", "linz", "salzburg"],
    );
  },
);

test("new-site on Hetzner Cloud needs no hosts and takes its location from --region", needsPartners, async (t) => {
  const root = tempRoot(t);
  const { code, err } = await run([
    "nuremberg",
    "--provider",
    "hcloud",
    "--region",
    "nbg1",
    "--country",
    "DE",
    "--partner",
    "frankfurt",
    "--root",
    root,
  ]);
  assert.equal(code, 0, err.join("\n"));
  const site = SiteFileSchema.parse(yamlOf(root, "sites/nuremberg.yaml"));
  assert.deepEqual(site.provider.kind === "hcloud" && site.provider.location, "nbg1");
});

test("--dry-run prints the files and the partner's change, and writes nothing", needsPartners, async (t) => {
  const root = tempRoot(t);
  const before = snapshot(root);
  const { code, out, err } = await run([
    "gmunden",
    "--provider",
    "netcup",
    "--country",
    "AT",
    "--partner",
    "helsinki",
    "--dry-run",
    "--root",
    root,
  ]);
  assert.equal(code, 0, err.join("\n"));
  assert.deepEqual(snapshot(root), before);
  assert.ok(out.includes("would write sites/gmunden.yaml:"));
  assert.ok(out.includes("would write stacks/Pulumi.gmunden.yaml:"));
  assert.ok(out.includes("would change sites/helsinki.yaml:"));
  assert.ok(out.includes("  + standbyFor: [gmunden]"), out.join("\n"));
  assert.ok(out.includes("dry run: nothing was written"));
});

test("every refused input exits 2, names the flag and writes nothing", async (t) => {
  const root = tempRoot(t);
  const before = snapshot(root);
  const base = { provider: "netcup", country: "AT", partner: "helsinki" };
  const cases: Array<[string, string[], RegExp]> = [
    [
      "an existing site",
      ["vienna", "--provider", "netcup", "--country", "AT", "--partner", "helsinki"],
      /^new-site: name: vienna already has a site file/,
    ],
    [
      "an unknown provider",
      ["gmunden", "--provider", "aws", "--country", "AT", "--partner", "helsinki"],
      /^new-site: --provider: aws is not a provider with an adapter \(lib\/providers\/registry\.ts: one of .*netcup/,
    ],
    [
      "an unknown country",
      ["gmunden", "--provider", "netcup", "--country", "XX", "--partner", "helsinki"],
      /^new-site: --country: XX is not an ISO 3166-1 alpha-2 country code/,
    ],
    [
      "a missing partner",
      ["gmunden", "--provider", "netcup", "--country", "AT", "--partner", "atlantis"],
      /^new-site: --partner: atlantis does not exist/,
    ],
    [
      "the site itself as partner",
      ["gmunden", "--provider", "netcup", "--country", "AT", "--partner", "gmunden"],
      /^new-site: --partner: gmunden is the new site itself/,
    ],
    ["no partner", ["gmunden", "--provider", "netcup", "--country", "AT"], /^new-site: --partner: is required/],
    [
      "an own prefix on Hetzner Cloud",
      ["gmunden", "--provider", "hcloud", "--region", "fsn1", "--country", "AT", "--partner", "helsinki", "--own-prefix"],
      /^new-site: --own-prefix: public\.mode: own-prefix is not possible here: Hetzner Cloud has no documented way to route a customer-owned prefix/,
    ],
    [
      "a Hetzner Cloud site without --region",
      ["gmunden", "--provider", "hcloud", "--country", "AT", "--partner", "helsinki"],
      /^new-site: --region: is required for Hetzner Cloud/,
    ],
    [
      "an unknown Hetzner Cloud location",
      ["gmunden", "--provider", "hcloud", "--region", "mars1", "--country", "AT", "--partner", "helsinki"],
      /^new-site: --region: mars1 is not a Hetzner Cloud location/,
    ],
    [
      "a taken code",
      ["gmunden", ...Object.entries(base).flatMap(([k, v]) => [`--${k}`, v]), "--code", "vie"],
      /^new-site: --code: vie is already the code of sites\/vienna\.yaml/,
    ],
    [
      "a malformed code",
      ["gmunden", ...Object.entries(base).flatMap(([k, v]) => [`--${k}`, v]), "--code", "GRZ"],
      /^new-site: --code: must be three lower-case letters/,
    ],
    ["a bad name", ["Gmunden!", ...Object.entries(base).flatMap(([k, v]) => [`--${k}`, v])], /^new-site: name: must be lower-case letters/],
    [
      "an unknown flag",
      ["gmunden", ...Object.entries(base).flatMap(([k, v]) => [`--${k}`, v]), "--bogus"],
      /^new-site: --bogus: unknown flag/,
    ],
  ];
  for (const [what, argv, expected] of cases) {
    const { code, err } = await run([...argv, "--root", root]);
    assert.equal(code, 2, `${what}: ${err.join("\n")}`);
    assert.ok(
      err.some((l) => expected.test(l)),
      `${what}:\n${err.join("\n")}`,
    );
    assert.match(err.at(-1)!, /^\d+ problem\(s\); nothing was written$/, what);
  }
  assert.deepEqual(snapshot(root), before, "nothing written");
});

test("an exhausted pool is refused, naming the pool and the flag", async (t) => {
  const root = tempRoot(t);
  const path = join(root, "sites", "pools.yaml");
  const pools = readFileSync(path, "utf8");
  // One /16 that a committed site holds, and a /23 that one holds: nothing left.
  writeFileSync(path, pools.replace("  - 10.0.0.0/10\n", "  - 10.10.0.0/16\n").replace("  - 198.18.0.0/16\n", "  - 198.18.2.0/23\n"));
  const before = snapshot(root);
  const { code, err } = await run([
    "gmunden",
    "--provider",
    "netcup",
    "--country",
    "AT",
    "--partner",
    "helsinki",
    "--own-prefix",
    "--root",
    root,
  ]);
  assert.equal(code, 2);
  assert.deepEqual(err, [
    "sites/pools.yaml: supernets: 10.10.0.0/16 has no free /16 left (site files and ledger hold the rest): add a private range to supernets",
    "new-site: --own-prefix: sites/pools.yaml: prefixes: 198.18.2.0/23 has no free /23 left (site files and ledger hold the rest): add a public range the operator holds to prefixes",
    "2 problem(s); nothing was written",
  ]);
  assert.deepEqual(snapshot(root), before);
  assert.ok(!existsSync(join(root, "sites", "gmunden.yaml")));
});

/**
 * What new-site writes for each provider, byte for byte: `test/fixtures/new-site/<case>.{site,stack}.yaml`.
 * The pools are pinned to space no committed site holds, so a new committed site changes nothing here;
 * `UPDATE_NEW_SITE_FIXTURES=1` rewrites the fixtures (review the diff: it is what new-site writes now).
 */
const OUTPUT_CASES: Array<[string, string[]]> = [
  ["netcup-own-prefix", ["gmunden", "--provider", "netcup", "--country", "AT", "--partner", "helsinki", "--own-prefix"]],
  ["netcup-region", ["gmunden", "--provider", "netcup", "--region", "at/grz", "--country", "AT", "--partner", "helsinki"]],
  ["ionos", ["linz", "--provider", "ionos", "--country", "AT", "--partner", "helsinki"]],
  ["ionos-own-prefix", ["linz", "--provider", "ionos", "--region", "de/fra", "--country", "AT", "--partner", "helsinki", "--own-prefix"]],
  ["other", ["salzburg", "--provider", "other", "--country", "AT", "--partner", "helsinki"]],
  ["other-own-prefix", ["salzburg", "--provider", "other", "--country", "AT", "--partner", "helsinki", "--own-prefix"]],
  ["hcloud", ["nuremberg", "--provider", "hcloud", "--region", "nbg1", "--country", "DE", "--partner", "helsinki"]],
];

test("new-site writes, per provider, the files of test/fixtures/new-site byte for byte", () => {
  const root = mkdtempSync(join(tmpdir(), "standort-new-site-output-"));
  try {
    cpSync(join(REPOSITORY_ROOT, "sites"), join(root, "sites"), { recursive: true });
    mkdirSync(join(root, "stacks"));
    const poolsPath = join(root, "sites", "pools.yaml");
    const pinned = readFileSync(poolsPath, "utf8")
      .replace(/^supernets:\n(  #.*\n)*(  - .*\n)+/m, "supernets:\n  - 10.250.0.0/16\n")
      .replace(/^prefixes:\n(  #.*\n)*(  - .*\n)+/m, "prefixes:\n  - 198.18.250.0/23\n")
      .replace(/^placeholders:\n(  #.*\n)*(  - .*\n)+/m, "placeholders:\n  - 198.19.60.0/24\n");
    assert.match(pinned, /^ {2}- 10\.250\.0\.0\/16\n/m);
    writeFileSync(poolsPath, pinned);
    const folders = { root, sites: join(root, "sites"), stacks: join(root, "stacks"), plans: join(root, "stacks", "plans") };
    const fixtures = join(__dirname, "fixtures", "new-site");
    for (const [name, argv] of OUTPUT_CASES) {
      const plan = planNewSite(parseNewSiteFlags(argv), folders);
      const site = plan.changes.find((c) => c.path.startsWith(folders.sites) && c.before === undefined)!;
      const stack = plan.changes.find((c) => c.path.startsWith(folders.stacks))!;
      for (const [kind, text] of [
        ["site", site.after],
        ["stack", stack.after],
      ] as const) {
        const path = join(fixtures, `${name}.${kind}.yaml`);
        if (process.env.UPDATE_NEW_SITE_FIXTURES === "1") {
          mkdirSync(fixtures, { recursive: true });
          writeFileSync(path, text);
        }
        assert.equal(text, readFileSync(path, "utf8"), `${name}: ${kind} file (UPDATE_NEW_SITE_FIXTURES=1 rewrites it)`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
