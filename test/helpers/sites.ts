/** Test helpers: the committed site files as data, and temporary copies to edit. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { SITES_DIR, readSiteDocuments } from "../../lib/model/load";
import { SiteDocument } from "../../lib/model/validate";

/** The names of the site files in a folder (default: the committed sites/), in name order: the sites the folder defines. */
export function siteNamesIn(dir: string = SITES_DIR): string[] {
  return readSiteDocuments(dir).siteNames;
}

/** The sites of a folder as problem messages list them ("known sites: …", "choose one of …"). */
export function knownSites(dir: string = SITES_DIR): string {
  return siteNamesIn(dir).join(", ");
}

/**
 * `count` site names that no site file of the folder uses (`atlantis`, then
 * `atlantis-2`, …), for tests about a site the files do not define: adding a
 * location never turns one of them into a real site.
 */
export function absentSiteNames(count: number, dir: string = SITES_DIR): string[] {
  const taken = new Set(siteNamesIn(dir));
  const names: string[] = [];
  for (let n = 1; names.length < count; n++) {
    const name = n === 1 ? "atlantis" : `atlantis-${n}`;
    if (!taken.has(name)) names.push(name);
  }
  return names;
}

/** One site name that no site file of the folder uses (see `absentSiteNames`). */
export function absentSiteName(dir: string = SITES_DIR): string {
  return absentSiteNames(1, dir)[0];
}

/** The committed site documents, deep-copied so a test may mutate them. */
export function siteDocuments(): SiteDocument[] {
  return readSiteDocuments().documents.map((d) => ({ file: d.file, data: structuredClone(d.data) }));
}

/** The document of one site, for mutation. */
export function documentOf(documents: SiteDocument[], name: string): Record<string, any> {
  const found = documents.find((d) => d.file === `sites/${name}.yaml`);
  if (!found) throw new Error(`no site ${name}`);
  return found.data as Record<string, any>;
}

/** A temporary copy of sites/ that a test may edit; removed by `dispose`. */
export function tempSites(): { dir: string; edit(name: string, change: (data: Record<string, any>) => void): void; dispose(): void } {
  const root = mkdtempSync(join(tmpdir(), "standort-sites-"));
  const dir = join(root, "sites");
  cpSync(SITES_DIR, dir, { recursive: true });
  return {
    dir,
    edit(name, change) {
      const path = join(dir, `${name}.yaml`);
      const data = parse(readFileSync(path, "utf8"));
      change(data);
      writeFileSync(path, stringify(data));
    },
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

const disposers: Array<() => void> = [];
let cleanupRegistered = false;

/**
 * A temporary copy of sites/ (site files and footprint) with `change` applied
 * to one file's data; returns the folder. Removed when the test file ends.
 */
export function sitesWith(file: string, change: (data: Record<string, any>) => void): string {
  // On the process's exit, not in a node:test `after`: registered from inside the first test that calls this, an
  // `after` hook belongs to that test and runs when it ends, leaving every later test's copy behind in /tmp.
  if (!cleanupRegistered) {
    process.once("exit", () => disposers.forEach((dispose) => dispose()));
    cleanupRegistered = true;
  }
  const copy = tempSites();
  disposers.push(() => copy.dispose());
  copy.edit(file.replace(/\.yaml$/, ""), change);
  return copy.dir;
}
