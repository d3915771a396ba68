/**
 * Partnerships between sites. Each site file names its own `partner`: the site
 * it replicates to and which stands by for it. A partnership is mutual (both
 * files name each other), or one-way where the partner lists the site in its
 * `standbyFor`: then the partner stands by for several sites, while its own
 * partner stays the one named in its file. Pure.
 */
import type { SiteFile } from "./schema";
import type { SiteModel } from "./model";

/** A parsed site file: its repository-relative path and the fields partnerships read. */
export interface PartnerFile {
  readonly file: string;
  readonly site: Pick<SiteFile, "partner" | "standbyFor">;
}

/** The site a file holds, by its file name (`sites/vienna.yaml` → `vienna`). */
function siteNameOf(file: string): string {
  return /([^/]+)\.ya?ml$/.exec(file)?.[1] ?? file;
}

/**
 * The problems of every file's `partner` and `standbyFor`, as `<file>: <field path>: <value> <rule>: <fix>` lines.
 * A site is known by its file name. `siteNames` lists every site file present (also those that failed to parse):
 * a partner whose file is broken exists, and its own fields are that file's problem.
 *
 * - `A.partner = B` holds when `B.partner = A` (mutual) or `A` is in `B.standbyFor` (B stands by for A too).
 * - Every entry `X` of `B.standbyFor` exists, is not `B`, is listed once, is not `B`'s mutual partner
 *   (redundant), and names `B` as its partner.
 */
export function partnerProblems(files: ReadonlyArray<PartnerFile>, siteNames: ReadonlyArray<string>): string[] {
  const problems: string[] = [];
  const known = [...siteNames].sort().join(", ");
  const byName = new Map(files.map((f) => [siteNameOf(f.file), f]));
  for (const { file, site } of files) {
    const self = siteNameOf(file);
    if (site.partner === self) problems.push(`${file}: partner: ${site.partner} is this site itself: name another site`);
    else if (!siteNames.includes(site.partner)) {
      problems.push(`${file}: partner: ${site.partner} does not exist (known sites: ${known})`);
    } else {
      // Where the partner's own partner is itself or missing, that file's problem is the one to fix.
      const partner = byName.get(site.partner);
      const theirs = partner?.site.partner;
      const standsBy = partner?.site.standbyFor.includes(self) ?? false;
      if (partner && !standsBy && theirs !== self && theirs !== site.partner && siteNames.includes(theirs!)) {
        problems.push(
          `${file}: partner: ${site.partner} names ${theirs} as its partner in ${partner.file}, not ${self}: a one-way partnership: add ${self} to standbyFor in ${partner.file} (${site.partner} then stands by for ${self} too), or name each other as partners in both files`,
        );
      }
    }

    site.standbyFor.forEach((other, i) => {
      const where = `${file}: standbyFor[${i}]: ${other}`;
      const first = site.standbyFor.indexOf(other);
      if (first !== i) problems.push(`${where} is already listed as standbyFor[${first}]: list each site once`);
      else if (other === self) problems.push(`${where} is this site itself: a site does not stand by for itself: remove it`);
      else if (!siteNames.includes(other)) problems.push(`${where} does not exist (known sites: ${known})`);
      else {
        const theirs = byName.get(other);
        // A file that did not parse has problems of its own; its partner is unknown.
        if (!theirs) return;
        if (theirs.site.partner !== self) {
          problems.push(
            `${where}'s partner is ${theirs.site.partner}, not ${self}: a site stands by only for sites that name it as partner: set partner: ${self} in ${theirs.file}, or remove ${other} from standbyFor`,
          );
        } else if (site.partner === other) {
          problems.push(
            `${where} is already this site's partner, and ${other}'s partner is ${self}: mutual partners stand by for each other already: remove ${other} from standbyFor`,
          );
        }
      }
    });
  }
  return problems;
}

/**
 * The partners of a site: the sites it exchanges replication with and keeps a tunnel to. Its own partner first (the
 * site that stands by for it), then every other site whose partner it is (the sites it stands by for, by name).
 * Sites missing from `sites` are left out.
 */
export function partnersOf(model: Pick<SiteModel, "name" | "partner">, sites: ReadonlyArray<SiteModel>): SiteModel[] {
  const own = sites.find((s) => s.name === model.partner && s.name !== model.name);
  const others = sites
    .filter((s) => s.partner === model.name && s.name !== model.name && s.name !== model.partner)
    .sort((a, b) => a.name.localeCompare(b.name));
  return own ? [own, ...others] : others;
}

/** Whether two sites are partners (either names the other as its partner). */
export function arePartners(a: Pick<SiteModel, "name" | "partner">, b: Pick<SiteModel, "name" | "partner">): boolean {
  return a.name !== b.name && (a.partner === b.name || b.partner === a.name);
}
