import test from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { loadFootprint, validateFootprint } from "../lib/footprint/load";
import { FootprintSchema } from "../lib/footprint/schema";
import { SITES_DIR } from "../lib/model/load";
import { InputError } from "../lib/model/validate";
import { example, footprintSiteNames } from "./fixtures/footprint/example";
import { absentSiteName, knownSites, siteNamesIn } from "./helpers/sites";

/** A copy of the committed site files with `footprint.yaml` replaced by `text` (or rewritten by `edit`). */
function sitesWith(footprint: string | ((committed: string) => string), run: (dir: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), "standort-footprint-"));
  const dir = join(root, "sites");
  mkdirSync(dir);
  try {
    for (const f of readdirSync(SITES_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== "footprint.yaml"))
      copyFileSync(join(SITES_DIR, f), join(dir, f));
    const committed = readFileSync(join(SITES_DIR, "footprint.yaml"), "utf8");
    writeFileSync(join(dir, "footprint.yaml"), typeof footprint === "string" ? footprint : footprint(committed));
    run(dir);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function problemsOf(dir: string): ReadonlyArray<string> {
  try {
    loadFootprint(dir);
  } catch (error) {
    if (error instanceof InputError) return error.problems;
    throw error;
  }
  return [];
}

test("the committed footprint loads with every site it names", () => {
  const { footprint, sites } = loadFootprint();
  assert.deepEqual(
    footprint.services.map((s) => [s.name, s.primary, s.standby, s.mode]),
    [
      ["groupware", "frankfurt", "helsinki", "standby"],
      ["mail", "vienna", "karlsruhe", "standby"],
      ["webhosting", "helsinki", "frankfurt", "standby"],
      ["tickets", "karlsruhe", "vienna", "standby"],
      ["git", "helsinki", "frankfurt", "standby"],
    ],
  );
  // Every site file of the folder, in name order, and among them every site the footprint names.
  assert.deepEqual(
    sites.map((s) => s.name),
    siteNamesIn(),
  );
  for (const name of footprintSiteNames(footprint)) assert.ok(siteNamesIn().includes(name), `${name} is a site`);
  assert.equal(footprint.policy.maxPrimaryShare, 0.5);
});

test("schema problems are reported per field with the rule", () => {
  sitesWith(
    (committed) =>
      committed
        .replace("    primary: karlsruhe\n    standby: vienna\n    mode: standby\n", "    primary: karlsruhe\n    mode: hot\n")
        .replace("maxPrimaryShare: 0.5", "maxPrimaryShare: 0.5\n  maxStandbys: 2")
        .replace("{ name: tickets, engine: postgres }", "{ name: tickets, engine: oracle }"),
    (dir) => {
      assert.deepEqual(problemsOf(dir), [
        "sites/footprint.yaml: policy.maxStandbys: unknown key (check the spelling; see sites/schema/footprint.schema.json)",
        "sites/footprint.yaml: services[3].standby: is required (expected string)",
        'sites/footprint.yaml: services[3].mode: "hot" must be one of standby, read-only, promoted',
        'sites/footprint.yaml: services[3].data.databases[0].engine: "oracle" must be one of postgres, mariadb',
      ]);
    },
  );
});

test("unknown sites and policy violations come out of the loader together", () => {
  const unknown = absentSiteName();
  sitesWith(
    (committed) =>
      committed
        .replace("    primary: vienna\n    standby: karlsruhe\n", `    primary: vienna\n    standby: ${unknown}\n`)
        .replace(
          "- { name: data, path: /srv/groupware/data, sizeGb: 800 }",
          "- { name: data, path: /srv/groupware/data, sizeGb: 800, intervalMinutes: 20 }",
        ),
    (dir) => {
      assert.deepEqual(problemsOf(dir), [
        `sites/footprint.yaml: services[1] (mail): standby ${unknown} is not a site: choose one of ${knownSites(dir)}`,
        "sites/footprint.yaml: services[0] (groupware): data.files[0].intervalMinutes 20 exceeds the 15 min its files may lag when written at frankfurt (at most 15, the RPO 15, the site's 15): set 15 or less, or remove it",
      ]);
    },
  );
});

test("YAML syntax errors name the line", () => {
  sitesWith("domain: standby.example.net\nservices:\n  - name: [unclosed\n", (dir) => {
    const problems = problemsOf(dir);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^sites\/footprint\.yaml: line \d+: /);
  });
});

test("a site file problem is reported, and the footprint is not checked against half-valid sites", () => {
  sitesWith(
    (committed) => committed,
    (dir) => {
      const vienna = join(dir, "vienna.yaml");
      const unknown = absentSiteName(dir);
      writeFileSync(vienna, readFileSync(vienna, "utf8").replace("partner: karlsruhe", `partner: ${unknown}`));
      assert.deepEqual(problemsOf(dir), [`sites/vienna.yaml: partner: ${unknown} does not exist (known sites: ${knownSites(dir)})`]);
    },
  );
});

test("validateFootprint applies the schema's defaults", () => {
  const { sites } = example();
  const result = validateFootprint(
    {
      domain: "standby.example.net",
      services: [
        {
          name: "wiki",
          publicName: "wiki.example.com",
          primary: "vienna",
          standby: "karlsruhe",
          recovery: { rpoMinutes: 15, rtoMinutes: 60 },
          workload: {
            containers: [{ name: "app", image: `registry.example.net/wiki/app:1.0@sha256:${"a".repeat(64)}`, port: 8080 }],
            readOnly: { environment: { READ_ONLY: "1" } },
          },
        },
      ],
    },
    sites,
  );
  assert.deepEqual(result.problems, [
    "sites/footprint.yaml: policy.maxPrimaryShare: provider netcup holds the primaries of 1 of 1 services (wiki), more than 50%: move a primary to a site of another provider",
    "sites/footprint.yaml: policy.maxPrimaryShare: country AT holds the primaries of 1 of 1 services (wiki), more than 50%: move a primary to a site in another country",
  ]);
  assert.equal(result.footprint!.services[0].mode, "standby");
  assert.deepEqual(result.footprint!.services[0].data, { databases: [], files: [] });
  const container = result.footprint!.services[0].workload.containers[0];
  assert.deepEqual([container.environment, container.secrets, container.volumes, container.publish], [{}, {}, [], []]);
  assert.equal(result.footprint!.services[0].workload.replicas, 2);
  assert.equal(result.footprint!.policy.maxPrimaryShare, 0.5);
});

test("the schema converts to JSON Schema with its rules and defaults", () => {
  const schema = z.toJSONSchema(FootprintSchema, { io: "input", unrepresentable: "any" }) as unknown as {
    properties: { policy: { properties: { maxPrimaryShare: { default: number; exclusiveMinimum: number; maximum: number } } } };
    required: string[];
  };
  assert.deepEqual(schema.properties.policy.properties.maxPrimaryShare, { default: 0.5, type: "number", exclusiveMinimum: 0, maximum: 1 });
  assert.deepEqual(schema.required, ["domain", "services"]);
});
