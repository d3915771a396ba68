// Every file the plan reads, whatever is wrong with it, and every command-line fault: exit 2, one line per
// problem naming the file, the field path or line and the rule, nothing printed on stdout (nothing planned).
// And a location that hosts no service of the footprint plans cleanly.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { main } from "../scripts/plan";
import { MAX_INPUT_FILE_BYTES, MAX_YAML_ALIAS_EXPANSION, MAX_YAML_DEPTH } from "../lib/model/input-file";
import { SITES_DIR } from "../lib/model/load";
import { STACKS_DIR } from "../lib/preview/run-stack";
import { requireTool, toolPath } from "./helpers/tools";
import { captured } from "./helpers/cli";

const roots: string[] = [];
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

/** A temporary copy of sites/ and of the stack files, in folders named `sites` and `stacks`. */
function copies(): { root: string; sites: string; stacks: string } {
  const root = mkdtempSync(join(tmpdir(), "standort-input-"));
  roots.push(root);
  const sites = join(root, "sites");
  const stacks = join(root, "stacks");
  mkdirSync(sites);
  mkdirSync(stacks);
  for (const f of readdirSync(SITES_DIR).filter((f) => f.endsWith(".yaml"))) copyFileSync(join(SITES_DIR, f), join(sites, f));
  for (const f of readdirSync(STACKS_DIR).filter((f) => /^Pulumi\..*\.yaml$/.test(f))) copyFileSync(join(STACKS_DIR, f), join(stacks, f));
  return { root, sites, stacks };
}

const plan = (argv: string[]) => captured(main, argv);

/** The plan refuses: exit 2, exactly these lines and the trailer on stderr, nothing on stdout. */
async function refused(argv: string[], expected: string[]): Promise<void> {
  const { code, out, err } = await plan(argv);
  assert.deepEqual(err, [...expected, `${expected.length} problem(s); nothing was planned`]);
  assert.equal(code, 2);
  assert.deepEqual(out, []);
}

/** Plans vienna from a copy of sites/ whose `file` holds `content`; expects exactly `expected`. */
async function siteFileRefused(file: string, content: string | Buffer, expected: string[]): Promise<void> {
  const { sites } = copies();
  writeFileSync(join(sites, file), content);
  await refused(["vienna", "--sites", sites], expected);
}

/** Plans vienna with a copy of the stack files whose `Pulumi.vienna.yaml` holds `content`. */
async function stackFileRefused(content: string | Buffer, expected: string[]): Promise<void> {
  const { stacks } = copies();
  writeFileSync(join(stacks, "Pulumi.vienna.yaml"), content);
  await refused(["vienna", "--stacks", stacks], expected);
}

const vienna = readFileSync(join(SITES_DIR, "vienna.yaml"), "utf8");
const viennaLines = vienna.split("\n").length;

// --- YAML faults: each rule once, in the reader every file goes through ---

test("a YAML syntax error names the line", async () => {
  await siteFileRefused("vienna.yaml", "name: vienna\ncode: [vie\n", [
    "sites/vienna.yaml: line 3: Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]);
});

test("a duplicate key names the key and its line", async () => {
  await siteFileRefused("vienna.yaml", `${vienna}partner: frankfurt\n`, [
    `sites/vienna.yaml: line ${viennaLines}: key partner appears more than once in one mapping: keep one`,
  ]);
});

test("an alias bomb (billion laughs) is refused at once, naming the alias that crosses the limit", async () => {
  const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (const [prev, name] of [..."abcdefgh"].map((c, i) => [c, "bcdefghi"[i]])) {
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(", ")}]`);
  }
  const started = Date.now();
  // 9^9 (387 million) values once expanded; *d is where the aliases pass 10,000 (9 + 81 + 729 × 9 + …).
  await siteFileRefused("footprint.yaml", levels.join("\n") + "\n", [
    `sites/footprint.yaml: line 5: alias *d expands the file beyond ${MAX_YAML_ALIAS_EXPANSION} values (a resource exhaustion attack, "billion laughs"): write the values out instead of aliasing them`,
  ]);
  assert.ok(Date.now() - started < 2000, `refused in ${Date.now() - started} ms`);
});

test("an alias without its anchor, and one inside the value it names, are refused", async () => {
  await siteFileRefused("vienna.yaml", `${vienna}extra: *nowhere\n`, [
    `sites/vienna.yaml: line ${viennaLines}: alias *nowhere names no anchor: set &nowhere on a value before it`,
  ]);
  await siteFileRefused("vienna.yaml", `${vienna}extra: &loop [1, *loop]\n`, [
    `sites/vienna.yaml: line ${viennaLines}: alias *loop lies inside the value it names: a file holds a tree, write the value out`,
  ]);
});

test("nesting deeper than the limit is refused before the file is composed", async () => {
  const depth = 20_000;
  await siteFileRefused("vienna.yaml", `name: ${"[".repeat(depth)}${"]".repeat(depth)}\n`, [
    `sites/vienna.yaml: line 1: lists and mappings nest deeper than ${MAX_YAML_DEPTH} levels: flatten the file`,
  ]);
});

test("a key that is a list or mapping is refused", async () => {
  await siteFileRefused("vienna.yaml", `${vienna}? [a, b]\n: c\n`, [
    `sites/vienna.yaml: line ${viennaLines}: a key must be a plain value, not a list, mapping or alias: write the key out`,
  ]);
});

test("an unknown tag is refused", async () => {
  const line = vienna.split("\n").indexOf("name: vienna") + 1;
  await siteFileRefused("vienna.yaml", vienna.replace("name: vienna", "name: !include vienna"), [
    `sites/vienna.yaml: line ${line}: unknown tag !include: remove it (input files hold plain strings, numbers, booleans, lists and mappings)`,
  ]);
});

test("a file that is not a mapping at the top level is refused", async () => {
  await siteFileRefused("vienna.yaml", "- name: vienna\n", [
    "sites/vienna.yaml: (top level): expected a mapping (key: value lines), got a list",
  ]);
  await siteFileRefused("vienna.yaml", "vienna\n", [
    'sites/vienna.yaml: (top level): expected a mapping (key: value lines), got the single value "vienna"',
  ]);
});

test("an empty file (or one holding only comments) is refused", async () => {
  await siteFileRefused("vienna.yaml", "# nothing yet\n", [
    "sites/vienna.yaml: (top level): the file is empty: write its settings as key: value lines",
  ]);
});

test("a second YAML document in one file is refused", async () => {
  await siteFileRefused("vienna.yaml", `${vienna}---\nname: graz\n`, [
    `sites/vienna.yaml: line ${viennaLines}: a second YAML document starts here: a file holds one document, remove the --- and what follows`,
  ]);
});

// --- encoding and size ---

test("bytes that are not UTF-8 name the line and the byte", async () => {
  const latin1 = Buffer.from(vienna.replace("code: vie", "code: vie # Wien, Österreich"), "latin1");
  const line = vienna.split("\n").findIndex((l) => l.startsWith("code:")) + 1;
  await siteFileRefused("vienna.yaml", latin1, [`sites/vienna.yaml: line ${line}: byte 0xD6 is not UTF-8: save the file as UTF-8`]);
});

test("a byte order mark is refused, UTF-8 or UTF-16", async () => {
  await siteFileRefused("vienna.yaml", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(vienna)]), [
    "sites/vienna.yaml: line 1: starts with a byte order mark (BOM): save the file as UTF-8 without BOM",
  ]);
  await siteFileRefused("vienna.yaml", Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(vienna, "utf16le")]), [
    "sites/vienna.yaml: line 1: is UTF-16 (it starts with a UTF-16 byte order mark): save the file as UTF-8 without BOM",
  ]);
});

test("a NUL byte (a binary file) is refused, naming the line", async () => {
  await siteFileRefused("vienna.yaml", `${vienna}notes: a\u0000b\n`, [
    `sites/vienna.yaml: line ${viennaLines}: holds the control character U+0000 (NUL): an input file is text (was a binary file saved under this name?)`,
  ]);
});

test("a file above the size limit is refused before it is parsed", async () => {
  assert.equal(MAX_INPUT_FILE_BYTES, 1024 * 1024);
  await siteFileRefused("vienna.yaml", vienna + "#".repeat(MAX_INPUT_FILE_BYTES), [
    `sites/vienna.yaml: (file): is ${Math.ceil((vienna.length + MAX_INPUT_FILE_BYTES) / 1024)} KiB, more than the 1 MiB an input file may hold: check that it is the right file`,
  ]);
});

// --- what is not a readable file ---

test("a site file that is a folder, a pipe or a broken link is refused", async () => {
  const { sites } = copies();
  rmSync(join(sites, "vienna.yaml"));
  mkdirSync(join(sites, "vienna.yaml"));
  await refused(["vienna", "--sites", sites], ["sites/vienna.yaml: (file): is a folder, not a file: replace it with the file"]);
  rmSync(join(sites, "vienna.yaml"), { recursive: true });
  symlinkSync(join(sites, "gone.yaml.txt"), join(sites, "vienna.yaml"));
  await refused(
    ["vienna", "--sites", sites],
    ["sites/vienna.yaml: (file): is a symbolic link to nothing: point it at the file or remove it"],
  );
  if (toolPath("mkfifo")) {
    rmSync(join(sites, "vienna.yaml"));
    execFileSync("mkfifo", [join(sites, "vienna.yaml")]);
    await refused(
      ["vienna", "--sites", sites],
      ["sites/vienna.yaml: (file): is not a regular file (a device, pipe or socket): name a file"],
    );
  }
});

// --- the --sites folder ---

test("a --sites folder that is missing, not a folder, empty or unreadable is refused", async () => {
  const { root, sites } = copies();
  const hint = "name the folder that holds the site files (<location>.yaml) and footprint.yaml";
  await refused(["vienna", "--sites", join(root, "nope")], [`${join(root, "nope")}: (folder): does not exist: ${hint}`]);
  await refused(["vienna", "--sites", join(sites, "vienna.yaml")], [`${join(sites, "vienna.yaml")}: (folder): is not a folder: ${hint}`]);
  mkdirSync(join(root, "empty"));
  writeFileSync(join(root, "empty", "README.md"), "not a site file\n");
  await refused(["vienna", "--sites", join(root, "empty")], [`${join(root, "empty")}: (folder): holds no site file: ${hint}`]);
  // Root reads any folder whatever its mode: a loop of links is unreadable for everyone.
  symlinkSync(join(root, "loop"), join(root, "loop"));
  await refused(
    ["vienna", "--sites", join(root, "loop")],
    [`${join(root, "loop")}: (folder): is a loop of symbolic links: point the link at a real file or folder`],
  );
});

// --- stack files: the same reader, then the shape Pulumi gives them ---

test("a stack file with a YAML syntax error names the line (was a stack trace, exit 1)", async () => {
  await stackFileRefused("config:\n  standort:site: vienna\n  standort:providerEnv: {FAILOVER_MOVE_COMMAND: x\n", [
    "stacks/Pulumi.vienna.yaml: line 4: Flow map in block collection must be sufficiently indented and end with a }",
  ]);
});

test("a stack file is read by the same reader: encoding, documents, aliases", async () => {
  await stackFileRefused(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("config:\n  standort:site: vienna\n")]), [
    "stacks/Pulumi.vienna.yaml: line 1: starts with a byte order mark (BOM): save the file as UTF-8 without BOM",
  ]);
  await stackFileRefused("config:\n  standort:site: vienna\n---\nconfig: {}\n", [
    "stacks/Pulumi.vienna.yaml: line 3: a second YAML document starts here: a file holds one document, remove the --- and what follows",
  ]);
  await stackFileRefused("- standort:site: vienna\n", [
    "stacks/Pulumi.vienna.yaml: (top level): expected a mapping (key: value lines), got a list",
  ]);
});

test("a stack file's config must be a mapping of <namespace>:<name> keys, a secret holding its ciphertext", async () => {
  await stackFileRefused("config:\n  - standort:site\n", [
    "stacks/Pulumi.vienna.yaml: config: expected a mapping of <namespace>:<name> settings, got a list",
  ]);
  await stackFileRefused("config:\n  site: vienna\n  standort:sshPrivateKey:\n    secure: 42\n", [
    "stacks/Pulumi.vienna.yaml: site: a configuration key is <namespace>:<name>: write standort:site",
    "stacks/Pulumi.vienna.yaml: standort:sshPrivateKey: secure must hold the ciphertext pulumi config set --secret standort:sshPrivateKey writes",
  ]);
});

test("--stacks: a location without a stack file there is refused", async () => {
  const { root } = copies();
  mkdirSync(join(root, "other"));
  await refused(
    ["vienna", "--stacks", join(root, "other")],
    ['stacks/Pulumi.vienna.yaml: does not exist: create it with "standort:site: vienna" (see README, adding a location)'],
  );
});

// --- plan snapshots (--diff reads them) ---

test("a broken plan snapshot stops --diff before anything is planned", async () => {
  const { root } = copies();
  const plans = join(root, "plans");
  mkdirSync(plans);
  writeFileSync(join(plans, "vienna.json"), '{\n  "stack": "vienna",\n  "resources": [,]\n}\n');
  await refused(
    ["vienna", "--diff", "--plans", plans],
    [`${join(plans, "vienna.json")}: (file): is not valid JSON: recreate it with npm run plan -- vienna --update`],
  );
  writeFileSync(join(plans, "vienna.json"), '{ "stack": "vienna", "resources": {}, "outputs": {} }\n');
  await refused(
    ["vienna", "--diff", "--plans", plans],
    [`${join(plans, "vienna.json")}: resources: expected array, got a mapping: recreate it with npm run plan -- vienna --update`],
  );
});

// --- the command line ---

test("command-line faults: unknown flag, missing value, a flag as value, a value for a switch, twice, empty", async () => {
  const known = "--json, --diff, --update, --expect-no-changes, --files, --footprint, --mermaid, --sites, --plans, --stacks";
  await refused(["vienna", "--bogus"], [`plan: --bogus: unknown flag (known: ${known})`]);
  await refused(["vienna", "-x"], [`plan: -x: unknown flag (known: ${known})`]);
  await refused(["vienna", "--json"], ["plan: --json: needs a value: write --json <value>"]);
  await refused(
    ["vienna", "--json", "--diff"],
    ["plan: --json: needs a value, got the flag --diff: write --json <value> (or --json=--diff)"],
  );
  await refused(["vienna", "--diff=yes"], ['plan: --diff: takes no value (got "yes"): write --diff alone']);
  await refused(["vienna", "--sites", "a", "--sites", "b"], ["plan: --sites: is given more than once: give it once"]);
  await refused(["vienna", "--sites="], ["plan: --sites: needs a value: write --sites <value>"]);
});

test("command-line faults: values of the wrong kind and conflicting flags", async () => {
  await refused(["Vienna!"], ["plan: location: must be lower-case letters, digits and dashes (2–32 characters, starting with a letter)"]);
  await refused(["vienna", "graz"], ["plan: location: expected one location, got vienna graz"]);
  await refused([], ["plan: location: name a location (npm run plan -- vienna) or pass --footprint"]);
  await refused(["vienna", "--expect-no-changes"], ["plan: expect-no-changes: only makes sense with --diff"]);
  await refused(["vienna", "--mermaid", "x.md"], ["plan: mermaid: only makes sense with --footprint"]);
  await refused(
    ["--footprint", "vienna", "--diff", "--files", "out"],
    [
      "plan: footprint: plans no location: drop vienna or --footprint",
      "plan: diff: only makes sense with a location, not with --footprint",
      "plan: files: only makes sense with a location, not with --footprint",
    ],
  );
});

test("command-line faults: paths of the wrong kind stop the plan before anything is read", async () => {
  const { root, sites } = copies();
  const file = join(sites, "vienna.yaml");
  await refused(
    ["vienna", "--json", root, "--files", file, "--stacks", join(root, "nope")],
    [
      `plan: --json: ${root} is a folder: name the file to write`,
      `plan: --files: ${file} is not a folder: name a folder`,
      `plan: --stacks: ${join(root, "nope")} is not a folder: name the folder that holds Pulumi.<location>.yaml`,
    ],
  );
  await refused(
    ["--footprint", "--mermaid", join(file, "x.md")],
    [`plan: --mermaid: ${join(file, "x.md")} lies under a file: name a path in a folder`],
  );
});

test("a key that spans lines is still reported on one line", async () => {
  await stackFileRefused('config:\n  "si\\nte": vienna\n', [
    "stacks/Pulumi.vienna.yaml: si\\nte: a configuration key is <namespace>:<name>: write standort:si\\nte",
  ]);
});

// --- a location that hosts no service ---

/** A copy of sites/ where karlsruhe (and vienna) host no service: mail and tickets gone, git not moving. */
function sitesWithoutServicesAtKarlsruhe(): string {
  const { sites } = copies();
  const path = join(sites, "footprint.yaml");
  const footprint = parse(readFileSync(path, "utf8")) as {
    policy: { maxPrimaryShare: number };
    services: Array<{ name: string; primary: string; standby: string; migration?: unknown }>;
  };
  footprint.services = footprint.services.filter((s) => s.primary !== "karlsruhe" && s.standby !== "karlsruhe");
  footprint.services.forEach((s) => delete s.migration);
  // Helsinki now holds 2 of the 3 primaries.
  footprint.policy.maxPrimaryShare = 1;
  writeFileSync(path, stringify(footprint));
  return sites;
}

test("a location that hosts no service plans cleanly: proxies with only the health endpoint, no service rule", async (t) => {
  const sites = sitesWithoutServicesAtKarlsruhe();
  const files = mkdtempSync(join(tmpdir(), "standort-noservice-"));
  roots.push(files);
  const { code, out, err } = await plan(["karlsruhe", "--sites", sites, "--files", files]);
  assert.deepEqual(err, []);
  assert.equal(code, 0);
  assert.ok(out.some((l) => /^Host files \(placeholder secrets\), \d+ files for 8 hosts/.test(l)));
  // The site still gets its firewall, proxies and storage.
  for (const host of ["fkb-fw-1", "fkb-proxy-1", "fkb-stor-1", "fkb-virt-1"]) {
    assert.ok(readdirSync(join(files, host)).length > 0, host);
  }

  const haproxy = readFileSync(join(files, "fkb-proxy-1", "etc", "haproxy", "haproxy.cfg"), "utf8");
  assert.match(haproxy, /^# karlsruhe answers no service of the footprint \(sites\/footprint\.yaml\): nothing listens on 80 or 443$/m);
  assert.doesNotMatch(haproxy, /^(frontend (http|https)|backend)\b/m);
  assert.deepEqual(
    haproxy.split("\n").filter((l) => /^(frontend|backend|listen)\b/.test(l)),
    ["frontend stats", "frontend prometheus"],
  );
  assert.match(haproxy, /^\tbind 10\.\d+\.\d+\.\d+:8404$/m);
  // The metrics endpoint for the site's Prometheus, on the management address too.
  assert.match(haproxy, /^\tbind 10\.\d+\.\d+\.\d+:8405$/m);
  // No service port to reach: no dmz-to-app rule (a tcp rule without ports would admit every port).
  for (const host of ["fkb-fw-1", "fkb-virt-1"]) {
    const nft = readFileSync(join(files, host, "etc", "nftables.conf"), "utf8");
    assert.doesNotMatch(nft, /dmz-to-app-services/, host);
    assert.match(nft, /comment "mgmt-to-ssh"/, host);
  }

  if (!requireTool(t, "haproxy")) return;
  const path = join(files, "fkb-proxy-1", "etc", "haproxy", "haproxy.cfg");
  // -c does not bind: the mgmt address need not exist here.
  assert.match(execFileSync(toolPath("haproxy")!, ["-c", "-f", path], { encoding: "utf8" }), /Configuration file is valid/);
});

test("an output file the file system refuses is a problem of its flag: exit 2, one line, no stack trace", async () => {
  const result = await plan(["vienna", "--json", "/proc/standort-plan.json"]);
  assert.equal(result.code, 2);
  assert.deepEqual(result.err, [
    "plan: --json: cannot write /proc/standort-plan.json (ENOENT): name a folder this user can write to",
    "1 problem(s); the plan above is complete, its output was not written",
  ]);
});
