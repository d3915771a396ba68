/**
 * Reading site files from disk. The only module of the model that does I/O;
 * everything it returns goes through `validateSites` before use.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseDocument } from "yaml";
import { SiteModel } from "./model";
import { InputError, SiteDocument, validateSites } from "./validate";

/** The repository root (two levels above this file). */
export const REPOSITORY_ROOT = resolve(__dirname, "..", "..");
/** Where site files live by default. */
export const SITES_DIR = join(REPOSITORY_ROOT, "sites");
/** Files in the sites folder that are not site files. */
export const NON_SITE_FILES = new Set(["footprint.yaml"]);

/** Parses one YAML file; syntax errors become problems naming the line. */
export function readYaml(path: string, display: string): { data?: unknown; problems: string[] } {
  const doc = parseDocument(readFileSync(path, "utf8"), { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map(
        (e) => `${display}: line ${e.linePos?.[0].line ?? "?"}: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`,
      ),
    };
  }
  return { data: doc.toJS(), problems: [] };
}

/** Reads every site file of a folder, in name order. */
export function readSiteDocuments(dir: string = SITES_DIR): { documents: SiteDocument[]; siteNames: string[]; problems: string[] } {
  const problems: string[] = [];
  const documents: SiteDocument[] = [];
  const names = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && !NON_SITE_FILES.has(f))
    .sort();
  for (const name of names) {
    const path = join(dir, name);
    const display = relative(resolve(dir, ".."), path);
    const read = readYaml(path, display);
    problems.push(...read.problems);
    if (read.data !== undefined) documents.push({ file: display, data: read.data });
  }
  return { documents, siteNames: names.map((n) => n.replace(/\.ya?ml$/, "")), problems };
}

/** All sites, validated together. Throws `InputError` listing every problem. */
export function loadSites(dir: string = SITES_DIR): SiteModel[] {
  const read = readSiteDocuments(dir);
  const validated = validateSites(read.documents, read.siteNames);
  const problems = [...read.problems, ...validated.problems];
  if (problems.length > 0) throw new InputError(problems);
  return validated.sites;
}
