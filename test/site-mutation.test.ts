/**
 * Property tests of the promise that no bad input in a site file is reported
 * as success or as a crash: take a committed site file, change ONE field (a
 * random path, a random replacement of a random kind), and read the folder the
 * way `npm run plan` does. The outcome must be either valid (and then every
 * host file of the site renders) or an `InputError` whose problems are each
 * one line `<file>: <path>: <rule>`; never another exception.
 *
 * The sites are taken from the folder, not named here, so a new location is
 * mutated too. Seeds are fixed (as elsewhere in the suite); set
 * STANDORT_FC_SEED to explore others and STANDORT_FC_RUNS for more runs, e.g.
 * `STANDORT_FC_SEED=$RANDOM STANDORT_FC_RUNS=2000`.
 */
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { parse, stringify } from "yaml";
import { loadFootprint } from "../lib/footprint/load";
import { planHostFiles } from "../lib/preview/files";
import { InputError } from "../lib/model/validate";
import { readSiteDocuments } from "../lib/model/load";
import { main } from "../scripts/plan";
import { tempSites } from "./helpers/sites";

const SEED = process.env.STANDORT_FC_SEED ? Number(process.env.STANDORT_FC_SEED) : 20260;
const RUNS = process.env.STANDORT_FC_RUNS ? Number(process.env.STANDORT_FC_RUNS) : undefined;

/** One problem line: a site file or the footprint, a field path, a rule; nothing spans lines. */
const PROBLEM_LINE = /^sites\/[a-z0-9-]+\.ya?ml: [^\n\r]+?: [^\n\r]+$/;

const committed = readSiteDocuments().documents.map((d) => ({
  name: d.file.replace(/^sites\/|\.ya?ml$/g, ""),
  data: d.data as Record<string, unknown>,
}));
const copy = tempSites();
after(() => copy.dispose());

type Path = ReadonlyArray<string | number>;

/** Every path to a value inside `value` (not the root itself), depth first. */
function valuePaths(value: unknown, at: Path = []): Path[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...at, i], ...valuePaths(v, [...at, i])]);
  if (value !== null && typeof value === "object")
    return Object.entries(value).flatMap(([k, v]) => [[...at, k], ...valuePaths(v, [...at, k])]);
  return [];
}

/** Paths to mappings (where a key can be added) and to lists (where an entry can be appended), the root included. */
function containerPaths(value: unknown, at: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [];
  const inner = Array.isArray(value)
    ? value.flatMap((v, i) => containerPaths(v, [...at, i]))
    : Object.entries(value).flatMap(([k, v]) => containerPaths(v, [...at, k]));
  return [at, ...inner];
}

function parentOf(root: unknown, path: Path): Record<string | number, unknown> {
  return path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], root) as Record<
    string | number,
    unknown
  >;
}

function leaves(value: unknown): unknown[] {
  if (Array.isArray(value)) return value.flatMap(leaves);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(leaves);
  return [value];
}

/** Values of every kind a careless edit or a hostile file might hold. */
const replacement: fc.Arbitrary<unknown> = (() => {
  const badAddresses = fc.constantFrom(
    "0.0.0.0",
    "255.255.255.255",
    "127.0.0.1",
    "169.254.0.1",
    "224.0.0.18",
    "240.0.0.1",
    "10.30.0.0",
    "10.30.0.1",
    "10.30.0.4",
    "10.30.1.5",
    "10.30.2.255",
    "10.40.0.1",
    "172.31.1.1",
    "198.19.40.10",
    "198.19.40.11",
    "198.19.10.1",
    "198.19.20.100",
    "198.18.4.1",
    "198.18.2.1",
    "1.2.3",
    "256.1.1.1",
    "01.2.3.4",
  );
  const prefixes = fc.constantFrom(
    "0.0.0.0/0",
    "0.0.0.0/8",
    "10.0.0.0/33",
    "198.18.2.0/23",
    "198.18.5.0/23",
    "10.10.0.0/16",
    "10.30.0.0/20",
    "172.31.0.0/16",
    "224.0.0.0/4",
    "192.168.0.0/16",
  );
  const numbers = fc.oneof(
    fc.integer({ min: -5, max: 300 }),
    fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 32, 2 ** 53, 1e308, 0.5, Number.NaN, Infinity, -Infinity),
  );
  const strings = fc.oneof(
    fc.string({ maxLength: 24 }),
    fc.constantFrom("", " ", "a\nb", "x".repeat(100_000), 'it\'s "quoted"', "ünïcödé", "%h", "\u2028"),
  );
  const slugs = fc.constantFrom(...committed.map((c) => c.name), "graz", "dmz", "hb-proxy", "eth0", "a-b");
  // Type-correct values from the committed files, in the wrong place.
  const known = fc.constantFrom(...new Set(committed.flatMap((c) => leaves(c.data))));
  const scalar = fc.oneof(fc.constant(null), fc.boolean(), numbers, strings, badAddresses, prefixes, known, slugs);
  return fc.oneof(
    { arbitrary: scalar, weight: 6 },
    { arbitrary: fc.array(scalar, { maxLength: 3 }), weight: 1 },
    { arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 }), weight: 1 },
  );
})();

/** A key to add: one the schema knows (somewhere) or anything. */
const newKey = fc.oneof(
  fc.constantFrom("extraSegments", "segments", "fenceCommand", "addresses", "serverTypes", "sizes", "count", "mgmt", "dmz", "peers"),
  fc.string({ minLength: 1, maxLength: 12 }),
);

/**
 * Every leaf of the committed files by the key that holds it (`address`,
 * `count`, `partner`): the value of the same field elsewhere is the subtlest
 * edit, type-correct and often valid.
 */
const leavesByKey = new Map<string, unknown[]>();
for (const c of committed) {
  for (const path of valuePaths(c.data)) {
    const key = String([...path].reverse().find((k) => typeof k === "string"));
    const value = path.reduce<unknown>((n, k) => (n as Record<string | number, unknown>)[k], c.data);
    if (value !== null && typeof value === "object") continue;
    const known = leavesByKey.get(key) ?? [];
    if (!known.includes(value)) leavesByKey.set(key, [...known, value]);
  }
}

interface Mutation {
  readonly site: string;
  readonly describe: string;
  readonly data: unknown;
}

const OPS = ["replace", "replace", "replace", "swap", "swap", "delete", "add", "append"] as const;

/** One field of one committed file changed; `ops` weights the kinds of change. */
const mutationOf = (ops: ReadonlyArray<(typeof OPS)[number]>): fc.Arbitrary<Mutation> =>
  fc
    .record({
      site: fc.nat(),
      op: fc.constantFrom(...ops),
      pick: fc.nat(),
      value: replacement,
      key: newKey,
    })
    .map(({ site, op, pick, value, key }) => {
      const chosen = committed[site % committed.length];
      const data = structuredClone(chosen.data);
      const containers = containerPaths(data);
      const values = valuePaths(data);
      if (op === "add" || op === "append") {
        const at = containers[pick % containers.length];
        const node = at.reduce<unknown>((n, k) => (n as Record<string | number, unknown>)[k], data) as Record<string, unknown>;
        if (Array.isArray(node)) {
          // A copy of an existing entry (a duplicate) half of the time, else the random value.
          const entry = node.length > 0 && pick % 2 === 0 ? structuredClone(node[0]) : value;
          node.push(entry);
          return { site: chosen.name, describe: `append to ${JSON.stringify(at)}: ${JSON.stringify(entry)?.slice(0, 80)}`, data };
        }
        node[key] = value;
        return { site: chosen.name, describe: `add ${JSON.stringify([...at, key])}: ${JSON.stringify(value)?.slice(0, 80)}`, data };
      }
      const leafPaths = values.filter((p) => {
        const v = p.reduce<unknown>((n, k) => (n as Record<string | number, unknown>)[k], data);
        return v === null || typeof v !== "object";
      });
      const path = op === "swap" ? leafPaths[pick % leafPaths.length] : values[pick % values.length];
      const parent = parentOf(data, path);
      const last = path[path.length - 1];
      if (op === "swap") {
        // The value of the same field in any committed file.
        const key = String([...path].reverse().find((k) => typeof k === "string"));
        const same = leavesByKey.get(key) ?? [value];
        const swapped = same[pick % same.length];
        parent[last] = swapped;
        return { site: chosen.name, describe: `swap ${JSON.stringify(path)} = ${JSON.stringify(swapped)?.slice(0, 80)}`, data };
      }
      if (op === "delete") {
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete parent[last];
        return { site: chosen.name, describe: `delete ${JSON.stringify(path)}`, data };
      }
      parent[last] = value;
      return { site: chosen.name, describe: `set ${JSON.stringify(path)} = ${JSON.stringify(value)?.slice(0, 80)}`, data };
    });
const mutation = mutationOf(OPS);

/** Writes the mutated file into the copy, runs `check`, and puts the committed file back. */
function withMutation<T>(m: Mutation, check: () => T): T {
  const path = join(copy.dir, `${m.site}.yaml`);
  const original = readFileSync(path, "utf8");
  writeFileSync(path, stringify(m.data));
  try {
    return check();
  } finally {
    writeFileSync(path, original);
  }
}

function assertProblemLines(lines: ReadonlyArray<string>, m: Mutation): void {
  assert.ok(lines.length > 0, `${m.describe}: an InputError without problems`);
  for (const line of lines) assert.match(line, PROBLEM_LINE, `${m.describe}: not one problem line: ${JSON.stringify(line).slice(0, 300)}`);
}

test("one field of a valid site file changed: valid and renderable, or refused with one line per problem", () => {
  let valid = 0;
  let refused = 0;
  fc.assert(
    fc.property(mutation, (m) =>
      withMutation(m, () => {
        let loaded;
        try {
          loaded = loadFootprint(copy.dir);
        } catch (error) {
          if (!(error instanceof InputError)) throw new Error(`${m.describe}: ${(error as Error).stack}`);
          assertProblemLines(error.problems, m);
          refused++;
          return;
        }
        valid++;
        // Valid input must render: a renderer refusing it is a rule validation is missing.
        const site = loaded.sites.find((s) => s.name === m.site)!;
        try {
          planHostFiles(site, loaded.sites, loaded.footprint);
        } catch (error) {
          throw new Error(`${m.describe}: validation passed but rendering failed: ${(error as Error).message}`);
        }
      }),
    ),
    { numRuns: RUNS ?? 150, seed: SEED },
  );
  // Both outcomes occur, or the mutations are not exploring.
  assert.ok(valid > 0 && refused > 0, `valid ${valid}, refused ${refused}`);
  if (process.env.STANDORT_FC_VERBOSE) console.log(`valid ${valid}, refused ${refused}`);
});

test("through the plan CLI: exit 0, or exit 2 with one line per problem and the count; never a stack trace", async () => {
  let planned = 0;
  await fc.assert(
    // Mostly the same field's value from another file, so that some runs pass validation and plan the whole stack.
    fc.asyncProperty(mutationOf(["swap", "swap", "replace"]), async (m) => {
      const path = join(copy.dir, `${m.site}.yaml`);
      const original = readFileSync(path, "utf8");
      writeFileSync(path, stringify(m.data));
      try {
        const err: string[] = [];
        const code = await main(
          [m.site, "--sites", copy.dir],
          () => {},
          (line) => err.push(line),
        );
        assert.ok(code === 0 || code === 2, `${m.describe}: exit ${code}`);
        if (code === 0) planned++;
        if (process.env.STANDORT_FC_VERBOSE) console.log(m.describe, code, err[0]);
        if (code === 2) {
          const trailer = err.pop();
          assertProblemLines(err, m);
          assert.equal(trailer, `${err.length} problem(s); nothing was planned`, m.describe);
        } else assert.deepEqual(err, [], m.describe);
      } finally {
        writeFileSync(path, original);
      }
    }),
    { numRuns: RUNS ? Math.ceil(RUNS / 20) : 8, seed: SEED },
  );
  if (process.env.STANDORT_FC_VERBOSE) console.log(`planned ${planned}`);
});

test("the mutation helper round-trips: an unchanged copy is valid", () => {
  for (const c of committed) assert.deepEqual(parse(stringify(c.data)), c.data);
  loadFootprint(copy.dir);
});
