// The rollout (npm run rollout): its order from the stacks' StackReferences, the affected stacks from
// offline plans compared with a git ref, and its path through Pulumi's Automation API against a
// stand-in `pulumi` CLI (test/fixtures/pulumi-standin) that records every call and refuses what the
// real CLI refuses.
import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REPOSITORY_ROOT } from "../lib/model/load";
import { PlanSnapshot, stableJson } from "../lib/preview/plan";
import { stackReads, rolloutOrder } from "../lib/rollout/order";
import { affectedStacks, plansAtRef, workingTreePlans } from "../lib/rollout/plans";
import { COMMENT_MARKER, MAX_COMMENT_CHARS, renderPlanComment } from "../lib/rollout/comment";
import { parseRolloutFlags, rollout, SECRETS_VARIABLE } from "../scripts/rollout";
import { InputError } from "../lib/model/validate";
import { siteNamesIn } from "./helpers/sites";

const STANDIN = join(REPOSITORY_ROOT, "test", "fixtures", "pulumi-standin");
const LOCATIONS = siteNamesIn();
const committedPlans = new Map(
  LOCATIONS.map((l) => [l, JSON.parse(readFileSync(join(REPOSITORY_ROOT, "stacks", "plans", `${l}.json`), "utf8")) as PlanSnapshot]),
);
const reads = stackReads(committedPlans);

/** Asserts that every stack runs after each selected peer it reads, or is listed to run again for it. */
function assertValidOrder(selected: string[], order: ReturnType<typeof rolloutOrder>): void {
  assert.deepEqual([...order.sequence].sort(), [...selected].sort());
  assert.deepEqual(order.waves.flat().sort(), [...selected].sort());
  const wave = new Map(order.waves.flatMap((w, i) => w.map((s) => [s, i] as const)));
  for (const stack of selected) {
    for (const peer of (reads.get(stack) ?? []).filter((p) => selected.includes(p))) {
      const ahead = order.readsAhead.find((r) => r.stack === stack)?.peers.includes(peer) ?? false;
      if (!ahead) assert.ok(wave.get(peer)! < wave.get(stack)!, `${stack} reads ${peer} but does not run after it`);
      else assert.ok(order.sequence.indexOf(peer) > order.sequence.indexOf(stack));
    }
  }
}

test("each stack reads the peers its plan holds StackReferences to: partners, the sites it stands by for, provider-assigned addresses", () => {
  assert.deepEqual(Object.fromEntries(reads), {
    falkenstein: ["helsinki", "karlsruhe"],
    frankfurt: ["helsinki"],
    helsinki: ["frankfurt", "vienna"],
    karlsruhe: ["falkenstein", "helsinki", "vienna"],
    vienna: ["helsinki", "karlsruhe"],
  });
});

test("the order of all locations runs each stack after the peers it reads, and names the readers a cycle puts first", () => {
  const order = rolloutOrder(LOCATIONS, reads);
  assertValidOrder(LOCATIONS, order);
  // One cycle through all five (partners read each other): frankfurt reads only helsinki, so it goes first.
  assert.deepEqual(order.sequence, ["frankfurt", "helsinki", "falkenstein", "karlsruhe", "vienna"]);
  assert.deepEqual(
    order.readsAhead.map((r) => `${r.stack}<${r.peers.join("+")}`),
    ["frankfurt<helsinki", "helsinki<vienna", "falkenstein<karlsruhe", "karlsruhe<vienna"],
  );
  // Stacks that read nothing from each other share a wave and run in parallel.
  const independent = rolloutOrder(["frankfurt", "vienna"], reads);
  assert.deepEqual(independent.waves, [["frankfurt", "vienna"]]);
  assert.deepEqual(independent.readsAhead, []);
  // An acyclic chain: helsinki reads frankfurt, so frankfurt's wave comes first and no completion is needed.
  assert.deepEqual(rolloutOrder(["helsinki", "frankfurt"], new Map([["helsinki", ["frankfurt"]]])).waves, [["frankfurt"], ["helsinki"]]);
});

test("rollout flags are validated: operation, stack list, --comment only with --changed-since", () => {
  const problems = (argv: string[]) => {
    try {
      parseRolloutFlags(argv);
      return [];
    } catch (error) {
      assert.ok(error instanceof InputError);
      return error.problems;
    }
  };
  assert.match(problems(["deploy", "--stacks", "all"]).join("\n"), /rollout: operation: "deploy" must be one of preview, up/);
  assert.match(problems(["up"]).join("\n"), /rollout: stacks: name the stacks/);
  assert.match(problems(["up", "--stacks", "Vienna;rm"]).join("\n"), /rollout: stacks: a comma-separated list/);
  assert.match(problems(["up", "--stacks", "all", "--comment", "c.md"]).join("\n"), /comment: only makes sense with --changed-since/);
  assert.match(problems(["up", "--stacks", "all", "--force"]).join("\n"), /rollout: --force: unknown flag/);
  assert.deepEqual(parseRolloutFlags(["up", "--stacks", "all", "--dry-run"]), { operation: "up", stacks: "all", dryRun: true });
});

/**
 * A repository whose one commit holds this working tree's files (so its code is the code under test), with
 * node_modules linked; one for the whole file (the plans of its commit are made once), its edits undone by each test.
 */
let copy: { dir: string; commit: string } | undefined;
function repository(t: { after: (fn: () => void) => void }): { dir: string; commit: string } {
  if (!copy) {
    const dir = mkdtempSync(join(tmpdir(), "standort-rollout-repo-"));
    copy = { dir, commit: "" };
    const listed = spawnSync("git", ["-C", REPOSITORY_ROOT, "ls-files", "-co", "--exclude-standard", "-z"], { encoding: "utf8" });
    assert.equal(listed.status, 0, listed.stderr);
    // Regular files only: a linked node_modules is listed (node_modules/ in .gitignore matches folders, not links).
    for (const file of listed.stdout
      .split("\0")
      .filter((f) => f && existsSync(join(REPOSITORY_ROOT, f)) && lstatSync(join(REPOSITORY_ROOT, f)).isFile())) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), readFileSync(join(REPOSITORY_ROOT, file)));
    }
    for (const args of [
      ["init", "-q"],
      ["add", "-A"],
      ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "base"],
    ]) {
      const r = spawnSync("git", ["-C", dir, ...args], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    }
    copy.commit = spawnSync("git", ["-C", dir, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim();
    // After the commit: a linked folder is not ignored by node_modules/ and would be committed.
    symlinkSync(join(REPOSITORY_ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  }
  const { dir } = copy;
  t.after(() => {
    spawnSync("git", ["-C", dir, "checkout", "-q", "--", "."]);
  });
  return copy;
}
after(() => {
  if (copy) rmSync(copy.dir, { recursive: true, force: true });
});

test("affected stacks come from comparing offline plans with a git ref: a README change affects none, a change to vienna's supernet affects exactly the stacks whose plans change", async (t) => {
  const repo = repository(t).dir;
  const lines: string[] = [];
  const run = (argv: string[]) =>
    rollout(
      argv,
      (l) => lines.push(l),
      (l) => lines.push(l),
      {},
      repo,
    );

  // The acceptance command on a clean tree, then with an unrelated change.
  assert.equal(await run(["preview", "--changed-since", "HEAD", "--dry-run"]), 0);
  assert.ok(lines.includes("affected: none (no stack's offline plan changes)"), lines.join("\n"));
  writeFileSync(join(repo, "README.md"), readFileSync(join(repo, "README.md"), "utf8") + "\nAn unrelated line.\n");
  lines.length = 0;
  const comment = join(repo, "comment.md");
  assert.equal(await run(["preview", "--changed-since", "HEAD", "--dry-run", "--comment", comment]), 0);
  assert.ok(lines.includes("affected: none (no stack's offline plan changes)"), lines.join("\n"));
  assert.match(readFileSync(comment, "utf8"), /No stack's plan changes/);

  // vienna's supernet moves: vienna's own resources change, and so do the peers that render its prefix.
  const vienna = join(repo, "sites", "vienna.yaml");
  writeFileSync(vienna, readFileSync(vienna, "utf8").replace("supernet: 10.30.0.0/16", "supernet: 10.31.0.0/16"));
  const base = await plansAtRef("HEAD", repo);
  const now = await workingTreePlans({ sitesDir: join(repo, "sites"), stacksDir: join(repo, "stacks") });
  const { affected } = affectedStacks(base, now);
  const differing = LOCATIONS.filter((l) => stableJson(base.plans.get(l)) !== stableJson(now.plans.get(l)));
  assert.deepEqual([...affected.keys()], differing);
  // karlsruhe is vienna's partner, helsinki its tunnel peer; frankfurt and falkenstein render nothing of vienna's supernet.
  assert.deepEqual(differing, ["helsinki", "karlsruhe", "vienna"]);
  lines.length = 0;
  assert.equal(await run(["preview", "--changed-since", "HEAD", "--dry-run", "--comment", comment]), 0);
  for (const stack of differing)
    assert.ok(
      lines.some((l) => l.startsWith(`affected: ${stack}: its plan changes`)),
      lines.join("\n"),
    );
  assert.ok(
    lines.some((l) => /10\.31\./.test(l)),
    "the diff shows the new addresses",
  );
  const markdown = readFileSync(comment, "utf8");
  assert.ok(markdown.startsWith(COMMENT_MARKER));
  assert.equal((markdown.match(/<details><summary><b>/g) ?? []).length, differing.length, "one collapsed section per affected stack");
  // The footprint diagram does not show supernets: it is left out when it does not change.
  assert.doesNotMatch(markdown, /```mermaid/);
  assert.ok(lines.includes("dry run: no pulumi command was run"));
});

/** The stand-in CLI's state: which stacks exist, what they read, and the calls it received. */
class StandIn {
  readonly dir = mkdtempSync(join(tmpdir(), "standort-pulumi-standin-"));
  constructor() {
    mkdirSync(join(this.dir, "stacks"));
    mkdirSync(join(this.dir, "locks"));
  }
  static qualified = (location: string) => `organization/standort/${location}`;
  file = (location: string) => join(this.dir, "stacks", `${StandIn.qualified(location).replaceAll("/", "__")}.json`);
  /** A deployed stack: one succeeded update from `head`, and its outputs. */
  deployed(location: string, extra: Record<string, unknown> = {}, head = "a".repeat(40)): void {
    const history = [
      {
        kind: "update",
        result: "succeeded",
        version: 1,
        startTime: "2026-11-01T00:00:00Z",
        endTime: "2026-11-01T00:01:00Z",
        message: "",
        environment: { "git.head": head },
      },
    ];
    const outputs = {
      wireguard: { value: { publicKeys: { [location]: `pk-${location}` }, presharedKeys: {} }, secret: false },
      tunnelEndpoint: { value: `192.0.2.${(reads.get(location) ?? []).length + 1}`, secret: false },
      credentials: { value: `credentials-${location}`, secret: true },
    };
    writeFileSync(this.file(location), JSON.stringify({ reads: [], outputs, history, config: {}, complete: true, ...extra }));
  }
  /** Every stack, deployed or not, reads what its plan references (the stand-in's StackReferences). */
  setReads(): void {
    for (const location of LOCATIONS) {
      if (!existsSync(this.file(location))) continue;
      this.update(location, (s) => (s.reads = (reads.get(location) ?? []).map(StandIn.qualified)));
    }
  }
  state(location: string): Record<string, any> {
    return JSON.parse(readFileSync(this.file(location), "utf8"));
  }
  update(location: string, change: (state: Record<string, any>) => void): void {
    const s = this.state(location);
    change(s);
    writeFileSync(this.file(location), JSON.stringify(s));
  }
  calls(): Array<{ argv: string[]; stdinBytes: number }> {
    const path = join(this.dir, "calls.jsonl");
    return existsSync(path)
      ? readFileSync(path, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l))
      : [];
  }
  /** The operations that change or preview a stack, as `<command> <location>`. */
  operations(): string[] {
    return this.calls()
      .filter((c) => ["up", "preview"].includes(c.argv[0]) || (c.argv[0] === "stack" && c.argv[1] === "init"))
      .map((c) => {
        const stack = c.argv[c.argv.indexOf("--stack") + 1] ?? c.argv[2];
        return `${c.argv[0] === "stack" ? "init" : c.argv[0]} ${(c.argv[0] === "stack" ? c.argv[2] : stack).split("/").pop()}`;
      });
  }
}

let standin: StandIn;
const saved = { path: process.env.PATH, state: process.env.STANDIN_PULUMI_STATE };
before(() => {
  // The Automation API runs the `pulumi` it finds on the PATH.
  process.env.PATH = `${join(STANDIN, "bin")}:${process.env.PATH}`;
});
after(() => {
  process.env.PATH = saved.path;
  if (saved.state === undefined) delete process.env.STANDIN_PULUMI_STATE;
  else process.env.STANDIN_PULUMI_STATE = saved.state;
});
function freshStandIn(t: { after: (fn: () => void) => void }): StandIn {
  standin = new StandIn();
  process.env.STANDIN_PULUMI_STATE = standin.dir;
  t.after(() => rmSync(standin.dir, { recursive: true, force: true }));
  return standin;
}
async function runRollout(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await rollout(
    argv,
    (l) => lines.push(l),
    (l) => lines.push(l),
    env,
  );
  return { code, lines };
}

test("--changed-since deployed compares each stack with the commit of its last succeeded update: a failed or skipped rollout is not lost", async (t) => {
  const { dir: repo, commit } = repository(t);
  const s = freshStandIn(t);
  for (const l of LOCATIONS) s.deployed(l, {}, commit);
  s.setReads();
  // frankfurt's only update failed: nothing of it is known to run. falkenstein's failed update was followed by one
  // that succeeded from the commit: it runs that commit.
  s.update("frankfurt", (state) => (state.history = [{ ...state.history[0], result: "failed" }]));
  s.update("falkenstein", (state) =>
    state.history.unshift({ ...state.history[0], version: 0, result: "failed", environment: { "git.head": "f".repeat(40) } }),
  );
  const vienna = join(repo, "sites", "vienna.yaml");
  writeFileSync(vienna, readFileSync(vienna, "utf8").replace("supernet: 10.30.0.0/16", "supernet: 10.31.0.0/16"));
  const lines: string[] = [];
  const code = await rollout(
    ["up", "--changed-since", "deployed"],
    (l) => lines.push(l),
    (l) => lines.push(l),
    {},
    repo,
  );
  assert.equal(code, 0, lines.join("\n"));
  assert.ok(lines.includes("affected: frankfurt: its last update (version 1) failed"), lines.join("\n"));
  for (const stack of ["helsinki", "karlsruhe", "vienna"]) assert.ok(lines.includes(`affected: ${stack}: its plan changes`), stack);
  assert.ok(!lines.some((l) => l.startsWith("affected: falkenstein")));
  const order = rolloutOrder(["frankfurt", "helsinki", "karlsruhe", "vienna"], reads).sequence;
  assert.deepEqual(
    s.operations(),
    order.map((stack) => `up ${stack}`),
  );
  // Without the backend there is no history to compare with.
  await assert.rejects(
    rollout(
      ["up", "--changed-since", "deployed", "--dry-run"],
      () => undefined,
      () => undefined,
      {},
      repo,
    ),
    (e: unknown) => e instanceof InputError && /--changed-since: deployed reads each stack's history from the backend/.test(e.problems[0]),
  );

  // The vienna change is committed and every stack is rolled out from that commit: nothing is left to do.
  const git = (...args: string[]) => spawnSync("git", ["-C", repo, ...args], { encoding: "utf8" });
  git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-am", "vienna moves");
  const head = git("rev-parse", "HEAD").stdout.trim();
  process.env.STANDIN_GIT_HEAD = head;
  t.after(() => {
    delete process.env.STANDIN_GIT_HEAD;
  });
  const run = async (argv: string[]) => {
    const out: string[] = [];
    return {
      code: await rollout(
        argv,
        (l) => out.push(l),
        (l) => out.push(l),
        {},
        repo,
      ),
      out,
    };
  };
  assert.equal((await run(["up", "--stacks", "all"])).code, 0);
  const settled = await run(["up", "--changed-since", "deployed"]);
  assert.ok(settled.out.includes("affected: none (no stack's offline plan changes)"), settled.out.join("\n"));
  // helsinki's outputs change outside a rollout (its floating IP replaced by hand): its readers' updates named what
  // they read of it, so each of them is behind now, with the same plan.
  s.update("helsinki", (state) => (state.outputs.tunnelEndpoint = { value: "203.0.113.77", secret: false }));
  const before = s.operations().length;
  const caught = await run(["up", "--changed-since", "deployed"]);
  assert.equal(caught.code, 0, caught.out.join("\n"));
  for (const reader of ["falkenstein", "frankfurt", "karlsruhe", "vienna"])
    assert.ok(caught.out.includes(`affected: ${reader}: it reads helsinki, whose outputs changed after its last succeeded update`), reader);
  assert.ok(!caught.out.some((l) => l.startsWith("affected: helsinki")));
  assert.deepEqual(
    s
      .operations()
      .slice(before)
      .map((o) => o.split(" ")[1])
      .sort(),
    ["falkenstein", "frankfurt", "karlsruhe", "vienna"],
  );
  // A rollout from an older checkout would roll the stacks back: refused, nothing run.
  git("checkout", "-q", "HEAD~1");
  const ran = s.operations().length;
  await assert.rejects(
    rollout(
      ["up", "--changed-since", "deployed"],
      () => undefined,
      () => undefined,
      {},
      repo,
    ),
    (e: unknown) =>
      e instanceof InputError &&
      e.problems.some((p) => p.includes(`was last deployed from ${head.slice(0, 12)}, which HEAD does not contain`)),
  );
  assert.equal(s.operations().length, ran);
  git("checkout", "-q", head);
});

test("a --comment path that cannot be written is refused before anything is planned", async () => {
  for (const [path, rule] of [
    [tmpdir(), /is a folder: name the file to write/],
    [join(REPOSITORY_ROOT, "README.md", "c.md"), /lies under a file: name a path in a folder/],
  ] as const) {
    await assert.rejects(
      rollout(
        ["preview", "--changed-since", "HEAD", "--comment", path],
        () => undefined,
        () => undefined,
      ),
      (e: unknown) =>
        e instanceof InputError && e.problems.length === 1 && rule.test(e.problems[0]) && e.problems[0].startsWith("rollout: --comment: "),
    );
  }
});

test("the stand-in refuses what the real CLI refuses: an unknown flag, a missing stack, a locked stack, up without --yes", (t) => {
  const s = freshStandIn(t);
  s.deployed("vienna");
  const pulumi = (...args: string[]) => spawnSync(join(STANDIN, "bin", "pulumi"), args, { encoding: "utf8", env: { ...process.env } });
  const bogus = pulumi("up", "--yes", "--bogus", "--stack", StandIn.qualified("vienna"));
  assert.equal(bogus.status, 255);
  assert.match(bogus.stderr, /unknown flag: --bogus/);
  assert.match(
    pulumi("stack", "select", "--stack", StandIn.qualified("nowhere")).stderr,
    /no stack named 'organization\/standort\/nowhere' found/,
  );
  assert.match(pulumi("up", "--stack", StandIn.qualified("vienna"), "--non-interactive").stderr, /--yes or --skip-preview must be passed/);
  mkdirSync(join(s.dir, "locks", StandIn.qualified("vienna").replaceAll("/", "__")));
  const locked = pulumi("up", "--yes", "--stack", StandIn.qualified("vienna"));
  assert.equal(locked.status, 255);
  assert.match(locked.stderr, /the stack is currently locked by 1 lock/);
  assert.equal(s.calls().length, 4, "every call is recorded, refused ones too");
});

test("rollout up of all locations through the Automation API: one update per stack in the dependency order, no second pass when no output changes", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  s.setReads();
  const { code, lines } = await runRollout(["up", "--stacks", "all"]);
  assert.equal(code, 0, lines.join("\n"));
  assert.deepEqual(s.operations(), ["up frankfurt", "up helsinki", "up falkenstein", "up karlsruhe", "up vienna"]);
  // Every call went through the Automation API's own flags, each naming its stack, none refused.
  for (const call of s.calls().filter((c) => c.argv[0] !== "version")) {
    assert.ok(call.argv.includes("--stack"), call.argv.join(" "));
    assert.ok(call.argv.includes("--non-interactive"), call.argv.join(" "));
  }
  const up = s.calls().find((c) => c.argv[0] === "up")!;
  assert.deepEqual(up.argv.slice(0, 3), ["up", "--yes", "--skip-preview"]);
  for (const l of LOCATIONS) assert.equal(s.state(l).history.length, 2, `${l} ran once`);
  assert.ok(lines.includes("rollout complete: frankfurt, helsinki, falkenstein, karlsruhe, vienna"), lines.join("\n"));
});

test("the first deployment of a new partner pair: both stacks are created, then both run, then the pass that completes the tunnels", async (t) => {
  const s = freshStandIn(t);
  // vienna and karlsruhe are the new pair; the other locations are deployed.
  for (const l of LOCATIONS.filter((l) => !["vienna", "karlsruhe"].includes(l))) s.deployed(l);
  s.setReads();
  const { code, lines } = await runRollout(["up", "--stacks", "karlsruhe,vienna"]);
  assert.equal(code, 0, lines.join("\n"));
  // Pass 2: karlsruhe with vienna's keys, and the deployed peers that read the new stacks (helsinki tunnels to
  // vienna, falkenstein to karlsruhe), in their order.
  assert.deepEqual(s.operations(), [
    "init karlsruhe",
    "init vienna",
    "up karlsruhe",
    "up vienna",
    "up helsinki",
    "up falkenstein",
    "up karlsruhe",
  ]);
  assert.ok(lines.includes("[karlsruhe] runs again: vienna changed the outputs it reads after it ran"), lines.join("\n"));
  assert.ok(
    lines.includes(
      "  and, where deployed, falkenstein, frankfurt, helsinki (not selected), when the outputs they read change: no peer keeps a stale key or endpoint",
    ),
    "the plan printed before the run names the readers that may join",
  );
  assert.ok(lines.includes("[helsinki] joins the rollout: vienna changed the outputs it reads"), lines.join("\n"));
  assert.ok(lines.includes("[falkenstein] joins the rollout: karlsruhe changed the outputs it reads"), lines.join("\n"));
  for (const l of ["helsinki", "falkenstein"]) assert.equal(s.state(l).complete, true, `${l} read the new stacks' outputs`);
  // The stand-in's StackReferences: each side read every peer's outputs in its last update.
  for (const l of ["vienna", "karlsruhe"]) assert.equal(s.state(l).complete, true, `${l}'s tunnels are complete`);
});

test("independent stacks run in parallel; a deployed stack outside the selection joins when outputs it reads change", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  s.setReads();
  // frankfurt and vienna read nothing from each other: one wave, their updates overlap.
  const parallel = await runRollout(["up", "--stacks", "frankfurt,vienna"]);
  assert.equal(parallel.code, 0, parallel.lines.join("\n"));
  assert.ok(parallel.lines.includes("pass 1: frankfurt, vienna (in parallel)"), parallel.lines.join("\n"));
  const [a, b] = [s.state("frankfurt").lastUp, s.state("vienna").lastUp];
  assert.ok(a.began < b.ended && b.began < a.ended, `the updates did not overlap: ${JSON.stringify({ a, b })}`);

  // helsinki's update publishes a new proxy address (a provider-assigned value no offline plan shows): every
  // stack that reads helsinki runs after it, in their own order, although only helsinki was named.
  s.update("helsinki", (state) => (state.extraOutputs = { proxyAddress: { value: "203.0.113.9", secret: false } }));
  const before = s.operations().length;
  const follow = await runRollout(["up", "--stacks", "helsinki"]);
  assert.equal(follow.code, 0, follow.lines.join("\n"));
  const ran = s.operations().slice(before);
  assert.equal(ran[0], "up helsinki");
  assert.deepEqual(ran.slice(1, 3).sort(), ["up falkenstein", "up frankfurt"]);
  assert.deepEqual(ran.slice(3), ["up karlsruhe", "up vienna"]);
  for (const reader of ["falkenstein", "frankfurt", "karlsruhe", "vienna"])
    assert.ok(follow.lines.includes(`[${reader}] joins the rollout: helsinki changed the outputs it reads`), follow.lines.join("\n"));
});

test("a locked stack stops the rollout: the running wave ends, nothing further starts, the report names each stack's version and the command that continues", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  s.setReads();
  mkdirSync(join(s.dir, "locks", StandIn.qualified("helsinki").replaceAll("/", "__")));
  const { code, lines } = await runRollout(["up", "--stacks", "all"]);
  assert.equal(code, 1);
  assert.deepEqual(s.operations(), ["up frankfurt", "up helsinki"]);
  const text = lines.join("\n");
  assert.match(text, /frankfurt\s+version 2 \(succeeded\) from 0000000000\d*\s+done/);
  assert.match(text, /helsinki\s+version 1 \(succeeded\) from aaaaaaaaaaaa\s+failed: error: the stack is currently locked/);
  assert.match(text, /vienna\s+version 1 .*not run/);
  assert.match(text, /helsinki is locked: .*pulumi cancel --yes --stack organization\/standort\/helsinki/);
  // frankfurt ran, but reads helsinki, which has not: it belongs to the rest.
  assert.ok(
    lines.includes("next: fix the cause, then run: npm run rollout -- up --stacks falkenstein,frankfurt,helsinki,karlsruhe,vienna"),
    text,
  );
});

test("outputs that change on every update stop the rollout after the last pass, naming the stacks", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  s.setReads();
  for (const l of ["karlsruhe", "vienna"]) s.update(l, (state) => (state.churn = true));
  const { code, lines } = await runRollout(["up", "--stacks", "karlsruhe,vienna"]);
  assert.equal(code, 1);
  assert.ok(
    lines.some((l) => l.startsWith("the peers' outputs did not settle after 3 passes")),
    lines.join("\n"),
  );
  assert.match(lines.join("\n"), /karlsruhe\s+version \d+ \(succeeded\).*needs another pass/);
  assert.ok(s.operations().length <= 3 * LOCATIONS.length, "bounded");
});

test("a backend that refuses the login stops the rollout before any update, with the CLI's error and no stack trace", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  writeFileSync(join(s.dir, "logged-out"), "");
  const { code, lines } = await runRollout(["up", "--stacks", "vienna"]);
  assert.equal(code, 1);
  assert.deepEqual(lines.slice(-2), [
    "rollout: error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions",
    "rollout: nothing further was run; check the backend (pulumi whoami), then: npm run rollout -- up --stacks vienna",
  ]);
  assert.deepEqual(s.operations(), []);
  // The same for the command the merge workflow runs, which reads the history first.
  const deployed = await runRollout(["up", "--changed-since", "deployed"]);
  assert.equal(deployed.code, 1);
  assert.equal(deployed.lines.at(-2), "rollout: error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions");
});

test("a stack outside the selection that a selected one reads must exist; preview skips a stack the backend does not have", async (t) => {
  const s = freshStandIn(t);
  for (const l of LOCATIONS.filter((l) => l !== "vienna")) s.deployed(l);
  s.setReads();
  const refused = await runRollout(["up", "--stacks", "karlsruhe"]);
  assert.equal(refused.code, 2, "the selection cannot run: nothing ran");
  assert.ok(refused.lines.includes("karlsruhe reads vienna, which is not deployed: add it to --stacks"), refused.lines.join("\n"));
  assert.deepEqual(s.operations(), [], "nothing ran");
  const preview = await runRollout(["preview", "--stacks", "vienna,frankfurt"]);
  assert.equal(preview.code, 0, preview.lines.join("\n"));
  assert.deepEqual(s.operations(), ["preview frankfurt"]);
  assert.ok(preview.lines.some((l) => l.startsWith("[vienna] not deployed yet")));
  assert.ok(preview.lines.some((l) => l.startsWith("[frankfurt] Previewing update")));
  // karlsruhe's program reads vienna, which does not exist: the engine would fail its preview, so it is not run.
  const skipped = await runRollout(["preview", "--stacks", "karlsruhe,frankfurt"]);
  assert.equal(skipped.code, 0, skipped.lines.join("\n"));
  assert.deepEqual(s.operations(), ["preview frankfurt", "preview frankfurt"]);
  assert.ok(
    skipped.lines.some((l) => l.startsWith("[karlsruhe] reads vienna, not deployed yet: no preview")),
    skipped.lines.join("\n"),
  );
});

test("secrets from the CI store (STANDORT_STACK_SECRETS) reach pulumi config on stdin, never on a command line or in the output", async (t) => {
  const s = freshStandIn(t);
  LOCATIONS.forEach((l) => s.deployed(l));
  s.setReads();
  const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n-----END OPENSSH PRIVATE KEY-----\n";
  const token = "robot-user:s3cret-password";
  const env = { [SECRETS_VARIABLE]: JSON.stringify({ "*": { sshPrivateKey: key }, falkenstein: { providerApiToken: token } }) };
  const { code, lines } = await runRollout(["up", "--stacks", "falkenstein,frankfurt"], env);
  assert.equal(code, 0, lines.join("\n"));
  assert.deepEqual(s.state("falkenstein").config, {
    "standort:providerApiToken": { secret: true, via: "stdin", length: token.length },
    "standort:sshPrivateKey": { secret: true, via: "stdin", length: key.length },
  });
  assert.deepEqual(Object.keys(s.state("frankfurt").config), ["standort:sshPrivateKey"]);
  const everything = JSON.stringify(s.calls()) + lines.join("\n");
  for (const secret of [token, "s3cret", "c2VjcmV0"])
    assert.ok(!everything.includes(secret), "a secret reached a command line or the output");
  // A malformed variable is refused by its known path and the rule, echoing neither a value nor an unknown key.
  const problems = async (value: unknown) => {
    const bad = await runRollout(["up", "--stacks", "frankfurt", "--dry-run"], { [SECRETS_VARIABLE]: JSON.stringify(value) }).catch(
      (e: unknown) => e,
    );
    assert.ok(bad instanceof InputError, String(bad));
    return bad.problems.join("\n");
  };
  const unknownKey = await problems({ frankfurt: { SEKRIT12: token } });
  assert.match(unknownKey, /^STANDORT_STACK_SECRETS: frankfurt: 1 key\(s\) are not secret keys of the stack configuration/);
  const unknownLocation = await problems({ SEKRIT7: { sshPrivateKey: token } });
  assert.match(unknownLocation, /^STANDORT_STACK_SECRETS: 1 entry is neither \* nor a location/);
  assert.match(await problems({ vienna: { sshPrivateKey: 7 } }), /^STANDORT_STACK_SECRETS: vienna\.sshPrivateKey: must be a string/);
  assert.match(await problems(JSON.parse('{"__proto__": {"sshPrivateKey": "x"}}')), /holds a __proto__ key/);
  for (const text of [unknownKey, unknownLocation]) for (const secret of ["SEKRIT", "s3cret"]) assert.ok(!text.includes(secret), text);
});

test("the pull request comment: one collapsed section per stack, the footprint when it changes, below GitHub's size limit", () => {
  const plan = committedPlans.get("vienna")!;
  // A diff far beyond a comment: a long text input of every resource of vienna changed.
  const noted = (note: string) =>
    ({ ...plan, resources: plan.resources.map((r) => ({ ...r, inputs: { ...r.inputs, note } })) }) as PlanSnapshot;
  const base = noted("a\nb");
  const bloated = noted(Array.from({ length: 12 }, (_, i) => `${"y".repeat(200)}${i}`).join("\n"));
  const { affected } = affectedStacks(
    { source: "main (abc)", plans: new Map([["vienna", base]]), failed: new Map() },
    {
      source: "working tree",
      plans: new Map([
        ["vienna", bloated],
        ["graz-new", plan],
      ]),
      failed: new Map(),
    },
  );
  assert.deepEqual([...affected.keys()], ["vienna", "graz-new"]);
  const order = rolloutOrder([...affected.keys()], reads);
  const text = renderPlanComment({
    base: "main (abc)",
    affected,
    removed: [{ stack: "linz" }],
    order,
    footprint: { before: "graph LR\n  a", after: "graph LR\n  b" },
  });
  assert.ok(text.startsWith(COMMENT_MARKER));
  assert.ok(text.length <= MAX_COMMENT_CHARS, `${text.length} characters`);
  assert.equal((text.match(/<details><summary><b>/g) ?? []).length, 2);
  assert.match(text, /<b>graz-new<\/b>: new: no stack file at main \(abc\); \d+ to add/);
  assert.match(text, /\+ pulumi:StackReference {2}peer-helsinki/, "a new stack's section lists what it creates");
  assert.match(text, /more lines: npm run plan -- vienna --diff shows all/);
  assert.match(text, /```mermaid\ngraph LR\n  b\n```/);
  assert.match(text, /\*\*linz\*\*: its stack file is gone; the rollout does not destroy stacks/);
  // The same footprint: no diagram.
  assert.doesNotMatch(
    renderPlanComment({ base: "b", affected, removed: [], order, footprint: { before: "graph LR", after: "graph LR" } }),
    /mermaid/,
  );
});
