// The deploy's longest dependency chain, computed from the offline plan's
// dependencies: within six steps at every location, and the pure function
// that finds it.
import test from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { longestChain, PlanSnapshot } from "../lib/preview/plan";
import { SITES_DIR, NON_SITE_FILES } from "../lib/model/load";
import { main, MAX_DEPLOY_DEPTH } from "../scripts/deploy-depth";

const locations = readdirSync(SITES_DIR)
  .filter((f) => /\.ya?ml$/.test(f) && !NON_SITE_FILES.has(f))
  .map((f) => f.replace(/\.ya?ml$/, ""));

const resource = (name: string, dependencies: string[] = [], custom = true) => ({
  urn: `urn:pulumi:s::p::t::${name}`,
  type: custom ? "t" : "standort:x:Component",
  name,
  ...(custom ? {} : { custom: false }),
  dependencies: dependencies.map((d) => `urn:pulumi:s::p::t::${d}`),
  inputs: {},
});

test("the longest chain follows dependencies, skips components and names its resources in order", () => {
  const plan: Pick<PlanSnapshot, "resources"> = {
    resources: [
      resource("server"),
      resource("component", ["server"], false),
      resource("tx-b", ["component"]),
      resource("confirm-b", ["tx-b"]),
      resource("tx-a", ["confirm-b"]),
      resource("other", ["server"]),
    ],
  };
  assert.deepEqual(longestChain(plan), ["server", "tx-b", "confirm-b", "tx-a"]);
  assert.throws(() => longestChain({ resources: [resource("a", ["b"]), resource("b", ["a"])] }), /dependency cycle/);
});

test(`every location deploys in at most ${MAX_DEPLOY_DEPTH} steps one after another; a pair's passive member first`, async () => {
  for (const location of locations) {
    const out: string[] = [];
    const code = await main(
      [location],
      (l) => out.push(l),
      (l) => out.push(l),
    );
    assert.equal(code, 0, out.join("\n"));
    const chain = out.slice(1).map((l) => l.replace(/^\s+\d+\. /, ""));
    assert.ok(chain.length <= MAX_DEPLOY_DEPTH && chain.length >= 4, `${location}: ${chain.join(" -> ")}`);
    // Where the longest chain is the hosts' delivery, it ends in a pair's active member's confirmation, after the
    // passive member's transaction and confirmation (the firewalls, or the storage pair after the database CA).
    // At frankfurt the database certificates' chain ties with it: key, request, certificate, the backup Secret, the CronJob.
    if (chain.some((n) => n.includes("-cfg-"))) {
      // A pair's: its passive member (…-2) delivered and confirmed before its active one (…-1).
      const tail = chain.slice(-4).map((n) => n.replace(/^.*-cfg-[a-z]+-/, ""));
      const role = tail[0].replace(/-2-tx$/, "");
      assert.deepEqual(tail, [`${role}-2-tx`, `${role}-2-confirm`, `${role}-1-tx`, `${role}-1-confirm`], location);
      assert.ok(["fw", "proxy", "stor"].includes(role), `${location}: ${tail.join(" -> ")}`);
    }
  }
});

test("a limit below the chain's length exits 1; a bad flag exits 2 naming it", async () => {
  const out: string[] = [];
  assert.equal(await main(["vienna", "--max", "3"], (l) => out.push(l)), 1);
  const err: string[] = [];
  assert.equal(
    await main(
      ["vienna", "--max", "zero"],
      () => undefined,
      (l) => err.push(l),
    ),
    2,
  );
  assert.match(err.join("\n"), /^deploy-depth: max: /m);
});
