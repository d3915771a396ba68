/**
 * Reads a plan snapshot file (a committed one under stacks/plans/, or one a
 * rollout wrote for a git ref) through the reader every input file goes through.
 */
import { readInputText } from "../model/input-file";
import { InputError, formatIssues } from "../model/validate";
import { z } from "zod";
import type { PlanSnapshot } from "./plan";

/** Largest plan snapshot read (the committed ones are below 1 MiB; a snapshot grows with the site's rendered files). */
export const MAX_PLAN_SNAPSHOT_BYTES = 64 * 1024 * 1024;

/** The shape a diff relies on; fields added later pass. */
const PlanSnapshotSchema = z.looseObject({
  stack: z.string(),
  resources: z.array(
    z.looseObject({
      urn: z.string(),
      type: z.string(),
      name: z.string(),
      parent: z.string().optional(),
      inputs: z.record(z.string(), z.unknown()),
      secretDigests: z.record(z.string(), z.string()).optional(),
    }),
  ),
  outputs: z.record(z.string(), z.unknown()),
});

/**
 * @param path the file
 * @param display how problems name it
 * @param fix what every problem line ends with (how to recreate the file)
 * @throws InputError naming the snapshot, the line or field, and the fix
 */
export function readPlanSnapshot(path: string, display: string, fix: string): PlanSnapshot {
  const read = readInputText(path, display, MAX_PLAN_SNAPSHOT_BYTES);
  if (read.text === undefined) throw new InputError(read.problems);
  let data: unknown;
  try {
    data = JSON.parse(read.text);
  } catch {
    // The engine's message quotes the file and differs between Node versions; the fix is the same.
    throw new InputError([`${display}: (file): is not valid JSON: ${fix}`]);
  }
  const parsed = PlanSnapshotSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw new InputError(formatIssues(display, parsed.error.issues).map((line) => `${line}: ${fix}`));
  return parsed.data;
}
