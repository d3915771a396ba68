/**
 * `npm run deploy-depth -- <location> [--max N]`
 *
 * Prints the longest chain of resources a deployment of the location must
 * create one after another, computed from the offline plan's `dependencies`
 * (what the engine waits for). Hosts configure in parallel; a pair's members
 * one after the other. Exit codes: 0 within --max (default 6), 1 longer,
 * 2 invalid input.
 */
import { z } from "zod";
import { planStack } from "../lib/preview/run-stack";
import { longestChain, toSnapshot } from "../lib/preview/plan";
import { slug } from "../lib/model/schema";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";

/** The deploy depth the project holds every location to (issue 10). */
export const MAX_DEPLOY_DEPTH = 6;

const FlagsSchema = z.strictObject({
  location: slug,
  max: z.coerce.number().int().positive().default(MAX_DEPLOY_DEPTH),
  sites: z.string().min(1).optional(),
});

export async function main(
  argv: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  try {
    const flags = parseFlags("deploy-depth", argv, { max: { type: "string" }, sites: { type: "string" } }, FlagsSchema);
    const run = await planStack(flags.location, { sitesDir: flags.sites });
    const chain = longestChain(toSnapshot(run));
    out(`${flags.location}: longest dependency chain ${chain.length} (at most ${flags.max})`);
    chain.forEach((name, i) => out(`  ${i + 1}. ${name}`));
    return chain.length <= flags.max ? 0 : 1;
  } catch (error) {
    return reportInputError(error, err);
  }
}

if (require.main === module) runAsProcess(main);
