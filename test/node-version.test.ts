// Node.js version truth: package.json's engines.node, the README's requirement, the Node.js that .ci/run installs
// and the node running the tests agree with what the installed dependencies declare in their own engines.node.
// A dependency upgrade that raises its floor (as @pulumi/pulumi 3.270 did, to Node.js 22) fails here until all follow.
import test from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(__dirname, "..");
const read = (file: string): string => readFileSync(join(ROOT, file), "utf8");

type Version = [number, number, number];
/** One comparator of a range, after expanding ^, ~, x-ranges and hyphens: `>=`, `>`, `<=`, `<` or `=` a full version. */
type Comparator = { op: ">=" | ">" | "<=" | "<" | "="; v: Version };
/** A range: any one of its sets, each all of its comparators (an empty set allows every version). */
type Range = Comparator[][];

const show = (v: Version): string => v.join(".");
const compare = (a: Version, b: Version): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** "22", "22.13", "22.x", "22.13.0", "v22.13.0-rc.1" as numbers, undefined where a part is missing or a wildcard. */
function partial(text: string): (number | undefined)[] | undefined {
  const m = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map((p) => (p === undefined || /^[xX*]$/.test(p) ? undefined : Number(p)));
  // "22.x.5" means 22.x: nothing after a wildcard counts.
  const first = parts.indexOf(undefined);
  return first === -1 ? parts : parts.map((p, i) => (i < first ? p : undefined));
}

const full = (p: (number | undefined)[]): Version => [p[0] ?? 0, p[1] ?? 0, p[2] ?? 0];
/** The first version after everything a partial version matches: 22 → 23.0.0, 22.13 → 22.14.0. */
function next(p: (number | undefined)[]): Version {
  if (p[1] === undefined) return [p[0]! + 1, 0, 0];
  return [p[0]!, p[1] + 1, 0];
}

function comparators(token: string): Comparator[] | undefined {
  const m = /^(>=|<=|>|<|=|\^|~>?)?(.*)$/.exec(token)!;
  const op = m[1] ?? "";
  const p = partial(m[2]);
  if (!p) return undefined;
  if (p[0] === undefined) return op === "<" || op === ">" ? undefined : []; // "*": any version ("<*" allows none)
  const exact = p[2] !== undefined;
  switch (op) {
    case "":
    case "=":
      return exact
        ? [{ op: "=", v: full(p) }]
        : [
            { op: ">=", v: full(p) },
            { op: "<", v: next(p) },
          ];
    case ">=":
      return [{ op: ">=", v: full(p) }];
    case ">":
      return exact ? [{ op: ">", v: full(p) }] : [{ op: ">=", v: next(p) }];
    case "<":
      return [{ op: "<", v: full(p) }];
    case "<=":
      return exact ? [{ op: "<=", v: full(p) }] : [{ op: "<", v: next(p) }];
    case "~":
    case "~>":
      return [
        { op: ">=", v: full(p) },
        { op: "<", v: next(p[1] === undefined ? p : [p[0], p[1]]) },
      ];
    default: {
      // ^: up to the next change of the first non-zero part.
      const [major, minor, patch] = p;
      const upper: Version =
        major !== 0 || minor === undefined ? [major + 1, 0, 0] : minor !== 0 || patch === undefined ? [0, minor + 1, 0] : [0, 0, patch + 1];
      return [
        { op: ">=", v: full(p) },
        { op: "<", v: upper },
      ];
    }
  }
}

/** Parses an npm range ("^20.17.0 || >=22.9.0", ">= 18", "6.* || 8.* || >= 10.*", "1.2 - 3"); undefined if it can't. */
function parseRange(text: string): Range | undefined {
  const sets: Range = [];
  for (const alternative of text.split("||")) {
    const hyphen = /^\s*(\S+)\s+-\s+(\S+)\s*$/.exec(alternative);
    // ">= 18" is ">=18": an operator binds to the version after it.
    const tokens = hyphen
      ? [`>=${hyphen[1]}`, `<=${hyphen[2]}`]
      : alternative
          .replace(/(>=|<=|>|<|=|\^|~>?)\s+/g, "$1")
          .trim()
          .split(/\s+/);
    const set: Comparator[] = [];
    for (const token of tokens.filter(Boolean)) {
      const c = comparators(token);
      if (!c) return undefined;
      set.push(...c);
    }
    sets.push(set);
  }
  return sets;
}

function satisfies(v: Version, range: Range): boolean {
  const holds = ({ op, v: w }: Comparator): boolean => {
    const c = compare(v, w);
    return op === ">=" ? c >= 0 : op === ">" ? c > 0 : op === "<=" ? c <= 0 : op === "<" ? c < 0 : c === 0;
  };
  return range.some((set) => set.every(holds));
}

/** The lowest version a range allows (0.0.0 for one without a lower bound); ">22.1.2" counts as 22.1.2, close enough for majors. */
function lowest(range: Range): Version {
  const lows = range.map((set) =>
    set.filter((c) => c.op !== "<" && c.op !== "<=").reduce<Version>((low, c) => (compare(c.v, low) > 0 ? c.v : low), [0, 0, 0]),
  );
  return lows.reduce((a, b) => (compare(a, b) <= 0 ? a : b));
}

const version = (text: string): Version => {
  const p = partial(text);
  assert.ok(p && p[2] !== undefined, `${text} is not a full version`);
  return full(p);
};

const pkg = JSON.parse(read("package.json"));
const ENGINES: string = pkg.engines?.node;
const OWN = parseRange(ENGINES ?? "");
const OWN_LOWEST = OWN ? lowest(OWN) : ([0, 0, 0] as Version);

/** Every package in package-lock.json with the engines.node its installed package.json declares (the lock's copy for optional packages not installed on this platform). */
function dependencyEngines(): { name: string; range: string }[] {
  const lock = JSON.parse(read("package-lock.json"));
  const out: { name: string; range: string }[] = [];
  const missing: string[] = [];
  for (const [path, entry] of Object.entries<any>(lock.packages)) {
    if (path === "" || entry.link) continue;
    const file = join(ROOT, path, "package.json");
    let engines: unknown;
    if (existsSync(file)) engines = JSON.parse(readFileSync(file, "utf8")).engines;
    else if (entry.optional)
      engines = entry.engines; // another platform's build (esbuild's, fsevents)
    else missing.push(path);
    const node = engines && typeof engines === "object" && !Array.isArray(engines) ? (engines as { node?: unknown }).node : undefined;
    if (typeof node === "string") out.push({ name: path.replace(/^node_modules\//, ""), range: node });
  }
  assert.deepEqual(missing, [], "packages in package-lock.json that are not installed: run npm ci first");
  return out;
}

test("package.json's engines.node is a range this test reads", () => {
  assert.equal(typeof ENGINES, "string", "package.json has no engines.node");
  assert.ok(OWN, `package.json engines.node "${ENGINES}" is not a range this test parses`);
  // .ci/run reads it too, and only as ">=X.Y.Z".
  assert.match(ENGINES, /^>=\s*\d+(\.\d+){0,2}$/, `.ci/run compares node with engines.node as ">=X.Y.Z", not "${ENGINES}"`);
});

test("the range parser reads the forms dependencies use", () => {
  const low = (r: string): string => show(lowest(parseRange(r)!));
  assert.equal(low(">=22"), "22.0.0");
  assert.equal(low(">= 18.0.0"), "18.0.0");
  assert.equal(low("^20 || >=22"), "20.0.0");
  assert.equal(low("^20.19.0 || ^22.13.0 || >=24"), "20.19.0");
  assert.equal(low("6.* || 8.* || >= 10.*"), "6.0.0");
  assert.equal(low(">=16 || 14 >=14.17"), "14.17.0");
  assert.equal(low("*"), "0.0.0");
  const r = parseRange("^20.19.0 || ^22.13.0 || >=24")!;
  assert.deepEqual(
    ["20.18.9", "20.19.0", "21.0.0", "22.12.0", "22.13.0", "23.11.1", "24.0.0"].map((v) => satisfies(version(v), r)),
    [false, true, false, false, true, false, true],
  );
  assert.equal(satisfies(version("22.23.3"), parseRange("1.2 - 22")!), true);
  assert.equal(satisfies(version("23.0.0"), parseRange("1.2 - 22")!), false);
  assert.equal(satisfies(version("0.2.9"), parseRange("^0.2.3")!), true);
  assert.equal(satisfies(version("0.3.0"), parseRange("^0.2.3")!), false);
  assert.equal(parseRange("node >= 0.4"), undefined);
});

test("engines.node asks for at least the Node.js every installed dependency requires", (t) => {
  assert.ok(OWN);
  const deps = dependencyEngines();
  assert.ok(deps.length > 100, `only ${deps.length} dependencies declare engines.node: is node_modules installed?`);
  const tooOld: string[] = [];
  const notAllowed: string[] = [];
  for (const { name, range } of deps) {
    const parsed = parseRange(range);
    if (!parsed) {
      t.diagnostic(`ignored ${name}: engines.node "${range}" is not a range this test parses`);
      continue;
    }
    const need = lowest(parsed);
    if (need[0] > OWN_LOWEST[0]) tooOld.push(`${name} needs Node.js ${need[0]} ("${range}")`);
    // The oldest Node.js that engines admits must be one each dependency admits ("^20.17.0 || >=22.9.0" rules out 22.0).
    else if (!satisfies(OWN_LOWEST, parsed)) notAllowed.push(`${name} does not support ${show(OWN_LOWEST)} ("${range}")`);
  }
  assert.deepEqual(tooOld, [], `package.json engines.node "${ENGINES}" allows Node.js ${OWN_LOWEST[0]}, but:`);
  assert.deepEqual(notAllowed, [], `package.json engines.node "${ENGINES}" starts at ${show(OWN_LOWEST)}, but:`);
});

test("the README's requirement names the same Node.js as engines.node", () => {
  const readme = read("README.md");
  const line = readme.split("\n").find((l) => /Node\.js v?\d+(\.\d+)* or newer/.test(l));
  assert.ok(line, `README.md has no line "Node.js <N> or newer" (package.json engines.node is "${ENGINES}")`);
  const stated = full(partial(/Node\.js (v?\d+(?:\.\d+)*) or newer/.exec(line)![1])!);
  assert.equal(show(stated), show(OWN_LOWEST), `README.md says "${line.trim()}", package.json engines.node is "${ENGINES}"`);
});

test(".ci/run installs a pinned Node.js of the major engines.node asks for, and the README's command the same one", () => {
  const run = read(".ci/run");
  const pin = /^ci_node=["']?(\d+\.\d+\.\d+)["']?\s*$/m.exec(run);
  assert.ok(pin, ".ci/run pins no Node.js (a line ci_node=X.Y.Z)");
  const pinned = version(pin[1]);
  assert.equal(pinned[0], OWN_LOWEST[0], `.ci/run installs Node.js ${pin[1]}, package.json engines.node is "${ENGINES}"`);
  assert.ok(satisfies(pinned, OWN!), `.ci/run installs Node.js ${pin[1]}, which package.json engines.node "${ENGINES}" does not allow`);
  assert.match(run, /npm install --prefix \.ci\/node .*"node-\$platform@\$ci_node"/, ".ci/run no longer installs node-<platform>@$ci_node");
  // A setup command in the README that installs Node.js from the npm registry installs the same one.
  for (const m of read("README.md").matchAll(/(?<![\w/@.-])node(?:-linux-[a-z0-9]+)?@(\d[\w.-]*)/g)) {
    assert.equal(m[1], pin[1], `README.md installs ${m[0]}, .ci/run ${pin[1]}`);
  }
});

test("the running node satisfies engines.node", () => {
  assert.ok(OWN);
  const running = version(process.versions.node);
  assert.ok(
    satisfies(running, OWN),
    `this is Node.js ${process.version}, package.json engines.node asks for "${ENGINES}": run the tests under a newer one, ` +
      `e.g. the one .ci/run installs from the npm registry (bash .ci/run, or see the README's Quick start)`,
  );
});
