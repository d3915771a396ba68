// The GitHub Actions workflows (.github/workflows): valid by action-validator (SchemaStore's workflow
// schema, compiled from mpalmer/action-validator), and held to the rules the rollout relies on.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { validateWorkflow } from "@action-validator/core";
import { parse } from "yaml";
import { REPOSITORY_ROOT } from "../lib/model/load";

const DIR = join(REPOSITORY_ROOT, ".github", "workflows");
const files = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const text = (file: string) => readFileSync(join(DIR, file), "utf8");
type Step = { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string>; if?: string };
type Job = { steps: Step[]; environment?: string; permissions?: Record<string, string>; if?: string; needs?: string };
const workflow = (file: string) =>
  parse(text(file)) as { on: Record<string, unknown>; jobs: Record<string, Job>; concurrency?: Record<string, unknown> };

test("the workflows are the pull request's and the rollout's", () => {
  assert.deepEqual(files, ["pull-request.yml", "rollout.yml"]);
});

for (const file of files) {
  test(`${file} is a valid workflow (action-validator)`, () => {
    assert.deepEqual(validateWorkflow(text(file)).errors, []);
  });
}

test("the validator refuses a broken workflow: a misspelt key, a wrong type, a job without steps", () => {
  const source = text("rollout.yml");
  for (const broken of [
    source.replace("runs-on:", "runs_on:"),
    source.replace("cancel-in-progress: false", "cancel-in-progress: sometimes"),
    source.replace(/steps:[\s\S]*$/, "steps: 3\n"),
  ]) {
    assert.notEqual(broken, source);
    assert.ok(validateWorkflow(broken).errors.length > 0, broken.slice(0, 200));
  }
});

test("no secret, input or event field is expanded inside a script: they reach it as environment variables", () => {
  for (const file of files) {
    for (const [name, job] of Object.entries(workflow(file).jobs)) {
      for (const step of job.steps) {
        for (const script of [step.run, step.with?.script].filter((s): s is string => typeof s === "string")) {
          assert.doesNotMatch(script, /\$\{\{\s*(secrets|inputs|github\.event)\./, `${file}: ${name}: a script expands an expression`);
        }
      }
    }
  }
});

test("actions are pinned to a major version or a commit; the CLI and Node.js versions are the project's", () => {
  const sdk = (JSON.parse(readFileSync(join(REPOSITORY_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> })
    .dependencies["@pulumi/pulumi"];
  const ciNode = /^ci_node=(\S+)$/m.exec(readFileSync(join(REPOSITORY_ROOT, ".ci", "run"), "utf8"))![1];
  for (const file of files) {
    for (const job of Object.values(workflow(file).jobs)) {
      for (const step of job.steps) {
        if (step.uses) assert.match(step.uses, /^[\w.-]+\/[\w.-]+@(v\d+|[0-9a-f]{40})$/, `${file}: ${step.uses}`);
        if (step.uses?.startsWith("pulumi/actions@"))
          assert.equal(String(step.with?.["pulumi-version"]), sdk, "the CLI of the SDK's version");
        if (step.uses?.startsWith("actions/setup-node@"))
          assert.equal(String(step.with?.["node-version"]), ciNode, "the Node.js .ci/run pins");
      }
    }
  }
});

test("a pull request runs the tests and posts the offline plan; only a configured backend previews; the merge rolls out behind approval", () => {
  const pr = workflow("pull-request.yml");
  assert.ok("pull_request" in pr.on);
  assert.ok(pr.jobs.test.steps.some((s) => s.run === "bash .ci/run"));
  const plan = pr.jobs.plan.steps.map((s) => s.run ?? "").join("\n");
  // Against the merge commit's first parent: main as it is, not the branch's old base.
  assert.match(plan, /npm run rollout -- preview --changed-since HEAD\^1 --dry-run --comment/);
  const comment = pr.jobs.plan.steps.find((s) => s.uses?.startsWith("actions/github-script@"))!;
  assert.match(comment.if ?? "", /^\$\{\{ !cancelled\(\) && /, "a failed plan replaces the earlier comment too, a cancelled run does not");
  assert.match(String(comment.with?.script), /c\.user\?\.login === "github-actions\[bot\]"/, "only its own comment is updated");
  assert.equal(pr.jobs.plan.steps[0].with?.["fetch-depth"], 0, "the base commit must be in the clone");
  assert.equal(pr.jobs.plan.permissions?.["pull-requests"], "write");
  assert.match(pr.jobs.preview.if ?? "", /vars\.STANDORT_PREVIEW == 'true'/);
  assert.equal(pr.jobs.preview.environment, "preview", "the pull request's code meets the secrets only after a review");
  assert.ok(!pr.jobs.preview.steps.some((s) => / up\b/.test(s.run ?? "")), "a pull request never updates a stack");

  const rollout = workflow("rollout.yml");
  assert.deepEqual((rollout.on.push as { branches: string[] }).branches, ["main"]);
  assert.equal(rollout.jobs.rollout.environment, "production");
  assert.equal(rollout.concurrency?.["cancel-in-progress"], false);
  const run = rollout.jobs.rollout.steps.map((s) => s.run ?? "").join("\n");
  // Each stack against what it last deployed: a push whose run GitHub cancelled while it waited is not lost.
  assert.match(run, /npm run rollout -- up --changed-since deployed/);
  for (const step of [
    rollout.jobs.rollout.steps.find((s) => s.run?.includes("rollout -- up"))!,
    pr.jobs.preview.steps.find((s) => s.run?.includes("rollout -- preview"))!,
  ]) {
    assert.equal(step.env?.STANDORT_STACK_SECRETS, "${{ secrets.STANDORT_STACK_SECRETS }}");
    assert.equal(step.env?.PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER, "true");
  }
});
