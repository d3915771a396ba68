/**
 * Where each service lives at this moment: which site takes its writes, which
 * sites hold copies, which role each site plays and which names it answers.
 * Everything else in the footprint (jobs, policies, reports, a site's stack)
 * derives from `placeService`, so a mode or migration step changes in one
 * place only. Pure.
 */
import { SiteModel } from "../model/model";
import { adapterOf } from "../providers/registry";
import { Footprint, FootprintService, MigrationStep } from "./schema";

/** The file every footprint problem is reported against. */
export const FOOTPRINT_FILE = "sites/footprint.yaml";

/** The company that runs a site (`hetzner` for Hetzner Cloud and dedicated servers alike): its adapter's `operator`. */
export type ProviderId = string;

/** Who runs a site: one outage of a provider takes down every site it runs. */
export function providerOf(site: SiteModel): ProviderId {
  return adapterOf(site).operator;
}

/** The role a site plays for one service. */
export type SiteRole = "primary" | "standby" | "read-only" | "promoted" | "migration-source" | "migration-target";

/** A name a site answers for a service, and which requests it serves under it. */
export interface AnsweredName {
  readonly name: string;
  readonly reads: boolean;
  readonly writes: boolean;
}

/** Why data flows between two sites. */
export type PathPurpose = "standby" | "migration";

/** One direction data of a service flows: from the writing site to a copy. */
export interface ReplicationPath {
  readonly from: string;
  readonly to: string;
  readonly purpose: PathPurpose;
}

export interface SitePlacement {
  readonly site: string;
  readonly role: SiteRole;
  readonly names: ReadonlyArray<AnsweredName>;
}

export interface ServicePlacement {
  readonly service: FootprintService;
  /** Index in `services`, for messages that point into the file. */
  readonly index: number;
  /** Where writes resume or go: the site whose loss makes the service read-only. */
  readonly writer: string;
  /**
   * The designated primary that concentration limits count: the primary, or
   * the migration target once writes have moved. A promotion does not move it:
   * promotion is an emergency measure and must never be blocked by a limit.
   */
  readonly home: string;
  /** Every site holding a copy of the data, writer first, then by name. */
  readonly copies: ReadonlyArray<string>;
  readonly paths: ReadonlyArray<ReplicationPath>;
  /** Role and answered names per site, sorted by site name. */
  readonly sites: ReadonlyArray<SitePlacement>;
}

/** Where the service's copy stands by after a migration's writes have moved. */
export function standbyAfterMigration(service: FootprintService): string {
  return service.migration?.standby ?? service.standby;
}

/** `<instance>-<cc>.<domain>`: the name a copy of the service answers at a site in country `cc`. */
export function standbyName(service: FootprintService, site: SiteModel, domain: string): string {
  return `${service.name}-${site.country.toLowerCase()}.${domain}`;
}

const WRITES_MOVED: ReadonlySet<MigrationStep> = new Set(["switch-writes", "done"]);

/** Whether a migration has moved the service's writes to its target. */
export function writesMoved(service: FootprintService): boolean {
  return service.migration !== undefined && WRITES_MOVED.has(service.migration.step);
}

/**
 * Places one service. Sites are looked up by name; a reference to an unknown
 * site is reported by the reference check, so here it only has to not crash:
 * such a site gets no country and its standby name uses `xx`.
 */
export function placeService(
  service: FootprintService,
  index: number,
  sites: ReadonlyMap<string, SiteModel>,
  domain: string,
): ServicePlacement {
  const nameAt = (site: string): string => {
    const model = sites.get(site);
    return model ? standbyName(service, model, domain) : `${service.name}-xx.${domain}`;
  };
  const rw = (name: string): AnsweredName => ({ name, reads: true, writes: true });
  const ro = (name: string): AnsweredName => ({ name, reads: true, writes: false });
  const P = service.primary;
  const S = service.standby;
  const placements: SitePlacement[] = [];
  let writer: string;
  let paths: ReplicationPath[];

  const migration = service.migration;
  if (migration) {
    // A migration is taken in standby mode (the policies insist on it); the
    // steps decide which of old and new answers reads and writes.
    const T = migration.to;
    const S2 = standbyAfterMigration(service);
    switch (migration.step) {
      case "parallel":
        writer = P;
        placements.push({ site: P, role: "migration-source", names: [rw(service.publicName)] });
        placements.push({ site: T, role: "migration-target", names: [] });
        placements.push({ site: S, role: "standby", names: [ro(nameAt(S))] });
        paths = [
          { from: P, to: T, purpose: "migration" },
          { from: P, to: S, purpose: "standby" },
        ];
        break;
      case "switch-reads":
        writer = P;
        placements.push({ site: P, role: "migration-source", names: [{ name: service.publicName, reads: false, writes: true }] });
        placements.push({ site: T, role: "migration-target", names: [ro(service.publicName)] });
        placements.push({ site: S, role: "standby", names: [ro(nameAt(S))] });
        paths = [
          { from: P, to: T, purpose: "migration" },
          { from: P, to: S, purpose: "standby" },
        ];
        break;
      case "switch-writes":
        // The old site keeps running and is fed in reverse: it is the way back.
        writer = T;
        placements.push({ site: T, role: "migration-target", names: [rw(service.publicName)] });
        placements.push({ site: P, role: "migration-source", names: [] });
        placements.push({ site: S2, role: "standby", names: [ro(nameAt(S2))] });
        paths = [
          { from: T, to: P, purpose: "migration" },
          { from: T, to: S2, purpose: "standby" },
        ];
        break;
      case "done":
        writer = T;
        placements.push({ site: T, role: "primary", names: [rw(service.publicName)] });
        // As any standby (mode standby): the public name read-only too, for the DNS switch.
        placements.push({ site: S2, role: "standby", names: [ro(service.publicName), ro(nameAt(S2))] });
        paths = [{ from: T, to: S2, purpose: "standby" }];
        break;
    }
  } else {
    switch (service.mode) {
      case "standby":
        writer = P;
        placements.push({ site: P, role: "primary", names: [rw(service.publicName)] });
        // The standby also answers the public name, read-only: the name servers send it there by themselves
        // while the primary's health URL fails (lib/footprint/dns.ts), so reads go on without anyone's edit.
        placements.push({ site: S, role: "standby", names: [ro(service.publicName), ro(nameAt(S))] });
        paths = [{ from: P, to: S, purpose: "standby" }];
        break;
      case "read-only":
        // The primary is out: nobody writes, the standby answers both names read-only.
        // Writes resume at the primary, so it stays the writer and the path stays configured.
        writer = P;
        placements.push({ site: P, role: "primary", names: [] });
        placements.push({ site: S, role: "read-only", names: [ro(service.publicName), ro(nameAt(S))] });
        paths = [{ from: P, to: S, purpose: "standby" }];
        break;
      case "promoted":
        // Replication reverses: the old primary becomes the copy once it is back.
        writer = S;
        placements.push({ site: S, role: "promoted", names: [rw(service.publicName), rw(nameAt(S))] });
        placements.push({ site: P, role: "standby", names: [ro(nameAt(P))] });
        paths = [{ from: S, to: P, purpose: "standby" }];
        break;
    }
  }

  const home = writesMoved(service) ? migration!.to : P;
  const holders = [...new Set(paths.flatMap((p) => [p.from, p.to]))];
  const copies = [writer, ...holders.filter((s) => s !== writer).sort()];
  // Two roles for one site would only arise from a placement the policies
  // reject (standby = primary, target = standby); keep the first so the result
  // stays well-formed and the policy message explains the rest.
  const bySite = new Map<string, SitePlacement>();
  for (const p of placements) if (!bySite.has(p.site)) bySite.set(p.site, p);
  return {
    service,
    index,
    writer,
    home,
    copies,
    paths,
    sites: [...bySite.values()].sort((a, b) => a.site.localeCompare(b.site)),
  };
}

/** Index of site models by name. */
export function siteIndex(sites: ReadonlyArray<SiteModel>): Map<string, SiteModel> {
  return new Map(sites.map((s) => [s.name, s]));
}

/** Places every service of the footprint, in file order. */
export function placeAll(footprint: Footprint, sites: ReadonlyArray<SiteModel>): ServicePlacement[] {
  const index = siteIndex(sites);
  return footprint.services.map((service, i) => placeService(service, i, index, footprint.domain));
}

/** `services[i] (name)`: how a message points at a service. */
export function serviceRef(service: FootprintService, index: number): string {
  return `services[${index}] (${service.name})`;
}
