/**
 * One site's view of the footprint: the services it hosts, its role for each,
 * the names it answers and the jobs it runs. This is what a site's stack
 * consumes. Each service's entry depends only on that service (and the site
 * models), so changing one service's mode or migration step changes that
 * service's entries and nothing else. Pure.
 */
import { SiteModel } from "../model/model";
import { Footprint, MigrationStep } from "./schema";
import { AnsweredName, SiteRole, placeAll, siteIndex } from "./placement";
import { PlannedJob, planServiceJobs } from "./jobs";

export interface SiteService {
  readonly service: string;
  readonly role: SiteRole;
  /** Names this site answers for the service, with the requests it serves under each. */
  readonly names: ReadonlyArray<AnsweredName>;
  /** Set while the service moves between sites. */
  readonly migrationStep?: MigrationStep;
  /** Jobs this site runs for the service, sorted by key. */
  readonly jobs: ReadonlyArray<PlannedJob>;
}

/**
 * Every service `siteName` hosts, sorted by service name. Throws when the
 * site is unknown: a stack asking for a site the files do not define is a
 * programming error, not an input problem.
 */
export function siteServices(footprint: Footprint, sites: ReadonlyArray<SiteModel>, siteName: string): SiteService[] {
  const index = siteIndex(sites);
  if (!index.has(siteName)) {
    throw new Error(`siteServices: ${siteName} is not a site (known sites: ${[...index.keys()].sort().join(", ")})`);
  }
  const entries: SiteService[] = [];
  for (const placement of placeAll(footprint, sites)) {
    const here = placement.sites.find((p) => p.site === siteName);
    if (!here) continue;
    const jobs = planServiceJobs(placement, index)
      .filter((j) => j.site === siteName)
      .sort((a, b) => a.key.localeCompare(b.key));
    entries.push({
      service: placement.service.name,
      role: here.role,
      names: here.names,
      ...(placement.service.migration ? { migrationStep: placement.service.migration.step } : {}),
      jobs,
    });
  }
  return entries.sort((a, b) => a.service.localeCompare(b.service));
}
