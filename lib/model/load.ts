/**
 * Reading site files from disk. With `input-file.ts` (the reader every input
 * file goes through) the only module of the model that does I/O; everything
 * it returns goes through `validateSites` before use.
 */
import { Stats, existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { SiteModel } from "./model";
import { InputError, SiteDocument, validateSites } from "./validate";
import { describeFsError, readYaml } from "./input-file";
import { POOLS_FILE_NAME, PoolsFile, ledgerOrder, parsePools } from "./pools";

export { readYaml } from "./input-file";

/** The repository root (two levels above this file). */
export const REPOSITORY_ROOT = resolve(__dirname, "..", "..");
/** Where site files live by default. */
export const SITES_DIR = join(REPOSITORY_ROOT, "sites");
/** Files in the sites folder that are not site files. */
export const NON_SITE_FILES = new Set(["footprint.yaml", POOLS_FILE_NAME]);

/** A path as problems name it: relative to the repository when inside it, else as it is. */
export function displayPath(path: string): string {
  const rel = relative(REPOSITORY_ROOT, path);
  return rel === "" ? "." : rel.startsWith("..") ? path : rel;
}

/**
 * The site files of a folder, in name order.
 * @throws InputError when the folder does not exist, is not a folder, cannot be read or holds no site file
 */
function siteFileNames(dir: string): string[] {
  const fail = (rule: string, fix = "name the folder that holds the site files (<location>.yaml) and footprint.yaml") =>
    new InputError([`${displayPath(dir)}: (folder): ${rule}: ${fix}`]);
  const fsFail = (error: unknown) => {
    const { rule, fix } = describeFsError(error);
    // A path that is not there is fixed by naming the right folder; a folder that is there but unreadable, by its rights.
    return /^(does not exist|lies under)/.test(rule) ? fail(rule) : fail(rule, fix);
  };
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch (error) {
    throw fsFail(error);
  }
  if (!stats.isDirectory()) throw fail("is not a folder");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    throw fsFail(error);
  }
  const names = entries.filter((f) => /\.ya?ml$/.test(f) && !NON_SITE_FILES.has(f)).sort();
  if (names.length === 0) throw fail("holds no site file");
  return names;
}

/**
 * Reads every site file of a folder, in name order.
 * @throws InputError when the folder itself cannot be read (see `siteFileNames`)
 */
export function readSiteDocuments(dir: string = SITES_DIR): {
  documents: SiteDocument[];
  siteNames: string[];
  problems: string[];
  /** The sites of the pools ledger, oldest first (`ledgerOrder`): validation blames the newer of two sites. */
  age: string[];
} {
  const problems: string[] = [];
  const documents: SiteDocument[] = [];
  const names = siteFileNames(dir);
  for (const name of names) {
    const path = join(dir, name);
    const display = relative(resolve(dir, ".."), path);
    const read = readYaml(path, display);
    problems.push(...read.problems);
    if (read.data !== undefined) documents.push({ file: display, data: read.data });
  }
  const pools = readPools(dir);
  problems.push(...pools.problems);
  return { documents, siteNames: names.map((n) => n.replace(/\.ya?ml$/, "")), problems, age: ledgerOrder(pools.pools?.ledger ?? []) };
}

/**
 * Reads the address pools and their ledger (`sites/pools.yaml`) of a folder
 * of site files; a folder without one has empty pools and an empty ledger.
 */
export function readPools(dir: string = SITES_DIR): { pools?: PoolsFile; problems: string[]; exists: boolean } {
  const path = join(dir, POOLS_FILE_NAME);
  if (!existsSync(path)) return { problems: [], exists: false };
  const display = relative(resolve(dir, ".."), path);
  const read = readYaml(path, display);
  if (read.data === undefined) return { problems: read.problems, exists: true };
  return { ...parsePools(read.data, display), exists: true };
}

/** All sites, validated together. Throws `InputError` listing every problem. */
export function loadSites(dir: string = SITES_DIR): SiteModel[] {
  const read = readSiteDocuments(dir);
  const validated = validateSites(read.documents, read.siteNames, read.age);
  const problems = [...read.problems, ...validated.problems];
  if (problems.length > 0) throw new InputError(problems);
  return validated.sites;
}
