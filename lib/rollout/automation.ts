/**
 * StackOperations over Pulumi's Automation API (`@pulumi/pulumi/automation`):
 * a LocalWorkspace on the repository (Pulumi.yaml, stacks/Pulumi.<stack>.yaml)
 * driving the `pulumi` CLI found on the PATH. Stacks are addressed by their
 * fully qualified name, `<stackPrefix>/<location>`, the name peers' StackReferences read.
 */
import { spawn } from "node:child_process";
import { LocalWorkspace, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import { CONFIG_NAMESPACE } from "../model/stack-config";
import type { StackOperations, StackState } from "./engine";

/** How many of a stack's newest updates are searched for its last succeeded one. */
const HISTORY_PAGE = 100;

/** Splits streamed CLI output into lines for `out`. */
function lines(out: (line: string) => void): (chunk: string) => void {
  let pending = "";
  return (chunk) => {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    parts.filter((l) => l.trim() !== "").forEach((l) => out(l));
  };
}

/**
 * @param options.workDir the folder holding Pulumi.yaml
 * @param options.qualified location → fully qualified stack name
 * @throws when no `pulumi` CLI runs (`pulumi version`)
 */
export async function automationOperations(options: { workDir: string; qualified: (stack: string) => string }): Promise<StackOperations> {
  const workspace = await LocalWorkspace.create({ workDir: options.workDir });
  const stacks = new Map<string, Stack>();
  const stackOf = async (stack: string): Promise<Stack> => {
    const known = stacks.get(stack);
    if (known) return known;
    const selected = await Stack.select(options.qualified(stack), workspace);
    stacks.set(stack, selected);
    return selected;
  };
  // A stack's state is read once until this rollout changes it (create, up): the selection, the engine and the
  // joiners ask for the same stacks, each read being two CLI calls.
  const states = new Map<string, Promise<StackState | undefined>>();
  const readState = async (stack: string): Promise<StackState | undefined> => {
    let selected: Stack;
    try {
      selected = await stackOf(stack);
    } catch (error) {
      if (error instanceof StackNotFoundError) return undefined;
      throw error;
    }
    // Without --show-secrets: the summaries' configuration is not needed, and stays masked. The newest first;
    // the last succeeded update tells what the stack runs (a failed one after it changed nothing for good).
    const history = await selected.history(HISTORY_PAGE, 1, false);
    const last = history[0];
    if (!last) return { version: 0 };
    const head = last.environment?.["git.head"];
    const deployed = history.find((u) => u.kind === "update" && u.result === "succeeded");
    const deployedFrom = deployed?.environment?.["git.head"];
    return {
      version: last.version,
      result: last.result,
      ...(head ? { gitHead: head } : {}),
      ...(deployedFrom ? { deployedFrom } : {}),
      ...(deployed?.message ? { deployedMessage: deployed.message } : {}),
    };
  };
  return {
    state(stack) {
      if (!states.has(stack)) states.set(stack, readState(stack));
      return states.get(stack)!;
    },
    async create(stack) {
      states.delete(stack);
      stacks.set(stack, await Stack.create(options.qualified(stack), workspace));
    },
    async setSecrets(stack, values) {
      // Stack.setConfig would put the value on the CLI's command line (after "--"): each value goes in on stdin
      // instead, which `pulumi config set` reads when no value is given.
      for (const [key, value] of Object.entries(values).sort(([a], [b]) => (a < b ? -1 : 1))) {
        const args = ["config", "set", "--secret", "--non-interactive", "--stack", options.qualified(stack), `${CONFIG_NAMESPACE}:${key}`];
        await new Promise<void>((resolve, reject) => {
          const child = spawn(workspace.pulumiCommand.command, args, { cwd: options.workDir, stdio: ["pipe", "ignore", "pipe"] });
          let stderr = "";
          child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
          child.on("error", reject);
          child.on("close", (code) =>
            code === 0 ? resolve() : reject(new Error(`pulumi config set ${CONFIG_NAMESPACE}:${key} failed: ${stderr.trim()}`)),
          );
          child.stdin.end(value);
        });
      }
    },
    async preview(stack, out) {
      const split = lines(out);
      await (await stackOf(stack)).preview({ diff: true, onOutput: split });
      split("\n");
    },
    async up(stack, out, message) {
      const split = lines(out);
      states.delete(stack);
      const result = await (await stackOf(stack)).up({ onOutput: split, message }).finally(() => states.delete(stack));
      split("\n");
      return Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.value as unknown]));
    },
    async outputs(stack) {
      const outputs = await (await stackOf(stack)).outputs();
      return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value as unknown]));
    },
  };
}
