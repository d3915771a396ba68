/**
 * Reading `sites/footprint.yaml`. The only module of the footprint that does
 * I/O; `validateFootprint` is the pure part a test or the plan can call with
 * data already in memory.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SiteModel } from "../model/model";
import { SITES_DIR, readSiteDocuments, readYaml } from "../model/load";
import { InputError, formatIssues, validateSites } from "../model/validate";
import { Footprint, FootprintSchema } from "./schema";
import { FOOTPRINT_FILE } from "./placement";
import { checkFootprint } from "./policies";

/** The footprint's JSON Schema, generated from `FootprintSchema` by `npm run schema`. */
export const FOOTPRINT_SCHEMA_FILE = "sites/schema/footprint.schema.json";

/**
 * Parses footprint data and checks it against the site models: schema
 * problems (via `formatIssues`), unknown sites and every policy violation.
 */
export function validateFootprint(data: unknown, sites: ReadonlyArray<SiteModel>): { footprint?: Footprint; problems: string[] } {
  // reportInput: messages quote the offending value ("hot" must be one of …).
  const parsed = FootprintSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    return { problems: formatIssues(FOOTPRINT_FILE, parsed.error.issues, FOOTPRINT_SCHEMA_FILE) };
  }
  return { footprint: parsed.data, problems: checkFootprint(parsed.data, sites) };
}

export interface LoadedFootprint {
  readonly footprint: Footprint;
  /** The validated site models the footprint was checked against, sorted by name. */
  readonly sites: SiteModel[];
}

/**
 * Reads every site file and `footprint.yaml` of `dir` and checks them
 * together. Throws `InputError` listing every problem of the site files and
 * of the footprint at once.
 */
export function loadFootprint(dir: string = SITES_DIR): LoadedFootprint {
  const read = readSiteDocuments(dir);
  // Every site file present counts as a site, also one that could not be read: its own problem is the one to fix.
  const validated = validateSites(read.documents, read.siteNames, read.age);
  const problems = [...read.problems, ...validated.problems];
  const sitesSound = problems.length === 0;
  const path = join(dir, "footprint.yaml");
  if (!existsSync(path))
    throw new InputError([...problems, `${FOOTPRINT_FILE}: (top level): the file is missing: list the hosted services there`]);
  const yaml = readYaml(path, FOOTPRINT_FILE);
  problems.push(...yaml.problems);
  let footprint: Footprint | undefined;
  if (yaml.data !== undefined) {
    // Policies against half-valid sites would only add noise: check them once the sites are sound.
    const result = validateFootprint(yaml.data, validated.sites);
    footprint = result.footprint;
    problems.push(...(sitesSound || !result.footprint ? result.problems : []));
  }
  if (problems.length > 0 || !footprint) throw new InputError(problems);
  return { footprint, sites: validated.sites };
}
