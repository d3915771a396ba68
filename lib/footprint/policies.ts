/**
 * The footprint's policies, checked over every site model and the footprint
 * together. Each check is a pure function returning one line per violation:
 * the file, the service (or site field), the rule broken and the fix. A plan
 * or stack must not proceed while any check returns a line.
 */
import { nameServerProblems } from "./dns";
import { cidr, containsAddress, parseAddress } from "../net/ipv4";
import { SiteModel } from "../model/model";
import { partnersOf } from "../model/partners";
import { CONTINUOUS_METHOD, Footprint } from "./schema";
import { FOOTPRINT_FILE, ProviderId, placeAll, providerOf, serviceRef, siteIndex, standbyAfterMigration } from "./placement";
import { MIN_BACKUP_DAYS, PlannedJob, fileIntervalMinutes, planJobs, treeIntervalMinutes } from "./jobs";
import { TunnelPlan, pairKey, parseWireGuardConfig, planTunnels } from "./wireguard";

function line(ref: string, message: string): string {
  return `${FOOTPRINT_FILE}: ${ref}: ${message}`;
}

function knownSites(sites: ReadonlyArray<SiteModel>): string {
  return sites
    .map((s) => s.name)
    .sort()
    .join(", ");
}

/** Sites a service refers to, with the field that names each. */
function siteReferences(service: Footprint["services"][number]): Array<{ field: string; site: string }> {
  const refs = [
    { field: "primary", site: service.primary },
    { field: "standby", site: service.standby },
  ];
  if (service.migration) {
    refs.push({ field: "migration.to", site: service.migration.to });
    if (service.migration.standby !== undefined) refs.push({ field: "migration.standby", site: service.migration.standby });
  }
  return refs;
}

/** Whether every site a service refers to exists; the other checks skip services that fail this. */
function resolvable(service: Footprint["services"][number], sites: ReadonlyMap<string, SiteModel>): boolean {
  return siteReferences(service).every((r) => sites.has(r.site));
}

/**
 * References and uniqueness: every named site exists; service names, public
 * names and standby names are unique; database and tree names are unique
 * within a service.
 */
export function referenceProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const index = siteIndex(sites);
  const problems: string[] = [];
  const serviceNames = new Map<string, number>();
  const publicNames = new Map<string, number>();
  const countries = [...new Set(sites.map((s) => s.country.toLowerCase()))].sort();
  const allTrees: Array<[{ path: string }, string]> = [];
  footprint.services.forEach((service, i) => {
    const ref = serviceRef(service, i);
    for (const { field, site } of siteReferences(service)) {
      if (!index.has(site)) problems.push(line(ref, `${field} ${site} is not a site: choose one of ${knownSites(sites)}`));
    }
    const first = serviceNames.get(service.name);
    if (first !== undefined)
      problems.push(line(ref, `name ${service.name} is already used by services[${first}]: give each service its own name`));
    else serviceNames.set(service.name, i);
    const earlier = publicNames.get(service.publicName);
    if (earlier !== undefined)
      problems.push(line(ref, `publicName ${service.publicName} is already used by services[${earlier}]: choose another public name`));
    else publicNames.set(service.publicName, i);
    // A public name must not shadow a standby name, which any country of a site may give.
    const shadowed = footprint.services.find((other) =>
      countries.some((cc) => service.publicName === `${other.name}-${cc}.${footprint.domain}`),
    );
    if (shadowed)
      problems.push(
        line(
          ref,
          `publicName ${service.publicName} is a standby name of ${shadowed.name}: choose a public name outside the standby names <service>-<cc>.${footprint.domain}`,
        ),
      );
    // Nor the name servers' names (<site>.ns.<domain>, lib/footprint/dns.ts) or the standby domain's apex.
    const nameServers = `.ns.${footprint.domain}`;
    if (service.publicName === footprint.domain || service.publicName === nameServers.slice(1) || service.publicName.endsWith(nameServers))
      problems.push(
        line(
          ref,
          `publicName ${service.publicName} is the standby domain or a name server's name (<site>${nameServers}): choose a public name outside them`,
        ),
      );
    // Trees share the storage hosts: one inside another would be copied twice and deleted by the other's --delete.
    service.data.files.forEach((tree, j) => {
      for (const [other, k] of allTrees) {
        if (other.path === tree.path || other.path.startsWith(`${tree.path}/`) || tree.path.startsWith(`${other.path}/`))
          problems.push(
            line(ref, `data.files[${j}].path ${tree.path} overlaps ${other.path} (${k}): give each file tree a folder of its own`),
          );
      }
      allTrees.push([tree, `${service.name} data.files[${j}]`]);
    });
    for (const [field, items] of [
      ["data.databases", service.data.databases],
      ["data.files", service.data.files],
    ] as const) {
      const seen = new Map<string, number>();
      items.forEach((item, j) => {
        const before = seen.get(item.name);
        if (before !== undefined)
          problems.push(line(ref, `${field}[${j}].name ${item.name} is already used by ${field}[${before}]: give each its own name`));
        else seen.set(item.name, j);
      });
    }
  });
  return problems;
}

/**
 * Spread: primary and standby (and, for a migration, its target and the
 * standby it will have) at different sites, providers and countries. A
 * migration is taken in standby mode and never targets the standby itself.
 */
export function placementProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const index = siteIndex(sites);
  const problems: string[] = [];
  footprint.services.forEach((service, i) => {
    if (!resolvable(service, index)) return;
    const ref = serviceRef(service, i);
    const spread = (runs: string, runsAs: string, stands: string, standsAs: string) => {
      const a = index.get(runs)!;
      const b = index.get(stands)!;
      if (a.name === b.name) {
        problems.push(line(ref, `${standsAs} ${b.name} is the same site as ${runsAs} ${a.name}: choose a standby at another site`));
        return;
      }
      if (providerOf(a) === providerOf(b)) {
        problems.push(
          line(
            ref,
            `${standsAs} ${b.name} is at the same provider (${providerOf(b)}) as ${runsAs} ${a.name}: choose a standby at another provider`,
          ),
        );
      }
      if (a.country === b.country) {
        problems.push(
          line(
            ref,
            `${standsAs} ${b.name} is in the same country (${b.country}) as ${runsAs} ${a.name}: choose a standby in another country`,
          ),
        );
      }
    };
    spread(service.primary, "primary", service.standby, "standby");
    const migration = service.migration;
    if (migration) {
      const after = standbyAfterMigration(service);
      if (migration.to === service.primary) {
        problems.push(
          line(ref, `migration.to ${migration.to} is the primary itself: name the site the service moves to, or remove migration`),
        );
      } else if (migration.to === after) {
        problems.push(
          line(ref, `migration.to ${migration.to} is the standby: to move writes to the standby set mode: promoted, or name another site`),
        );
      } else {
        spread(migration.to, "migration.to", after, migration.standby !== undefined ? "migration.standby" : "standby");
      }
      if (service.mode !== "standby") {
        problems.push(line(ref, `mode ${service.mode} while migrating: finish or remove the migration first, or set mode: standby`));
      }
    }
  });
  return problems;
}

/** Primaries per provider and per country, counting each service at its designated primary. */
export function primaryShares(
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
): {
  total: number;
  provider: Map<ProviderId, string[]>;
  country: Map<string, string[]>;
} {
  const index = siteIndex(sites);
  const provider = new Map<ProviderId, string[]>();
  const country = new Map<string, string[]>();
  for (const placement of placeAll(footprint, sites)) {
    const site = index.get(placement.home);
    if (!site) continue;
    const add = <K>(map: Map<K, string[]>, key: K) => map.set(key, [...(map.get(key) ?? []), placement.service.name]);
    add(provider, providerOf(site));
    add(country, site.country);
  }
  const sortMap = <K extends string>(map: Map<K, string[]>) => new Map([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));
  return { total: footprint.services.length, provider: sortMap(provider), country: sortMap(country) };
}

/** Whether `count` of `total` exceeds `share` (tolerant of binary fractions such as 0.3 × 10). */
export function exceedsShare(count: number, total: number, share: number): boolean {
  return count > share * total + 1e-9;
}

/** Concentration: no provider and no country holds the primaries of more than `policy.maxPrimaryShare` of the services. */
export function concentrationProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const shares = primaryShares(footprint, sites);
  const limit = footprint.policy.maxPrimaryShare;
  const percent = (x: number) => `${Math.round(x * 100)}%`;
  const problems: string[] = [];
  for (const [kind, map, fix] of [
    ["provider", shares.provider, "move a primary to a site of another provider"],
    ["country", shares.country, "move a primary to a site in another country"],
  ] as const) {
    for (const [key, services] of map) {
      if (exceedsShare(services.length, shares.total, limit)) {
        problems.push(
          line(
            "policy.maxPrimaryShare",
            `${kind} ${key} holds the primaries of ${services.length} of ${shares.total} services (${[...services].sort().join(", ")}), more than ${percent(limit)}: ${fix}`,
          ),
        );
      }
    }
  }
  return problems;
}

/**
 * RPO: files are copied at least every min(15, RPO, site interval) minutes
 * from wherever the service writes; databases replicate continuously with the
 * engine's own method.
 */
export function replicationProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const index = siteIndex(sites);
  const problems: string[] = [];
  for (const placement of placeAll(footprint, sites)) {
    const { service, index: i } = placement;
    const ref = serviceRef(service, i);
    const writers = [...new Set(placement.paths.map((p) => p.from))].sort();
    service.data.files.forEach((tree, j) => {
      for (const writerName of writers) {
        const writer = index.get(writerName);
        if (!writer) continue;
        const limit = fileIntervalMinutes(service, writer);
        const interval = treeIntervalMinutes(service, tree, writer);
        if (interval > limit) {
          problems.push(
            line(
              ref,
              `data.files[${j}].intervalMinutes ${interval} exceeds the ${limit} min its files may lag when written at ${writer.name} (at most 15, the RPO ${service.recovery.rpoMinutes}, the site's ${writer.storage.replicationIntervalMinutes}): set ${limit} or less, or remove it`,
            ),
          );
        }
      }
    });
    service.data.databases.forEach((db, j) => {
      const method = db.replication ?? CONTINUOUS_METHOD[db.engine];
      const fitting = CONTINUOUS_METHOD[db.engine];
      if (method === "dump") {
        problems.push(
          line(
            ref,
            `data.databases[${j}].replication dump is periodic, not continuous: use ${fitting} (${db.engine} keeps the standby current)`,
          ),
        );
      } else if (method !== fitting) {
        problems.push(line(ref, `data.databases[${j}].replication ${method} does not fit ${db.engine}: use ${fitting}`));
      }
    });
  }
  return problems;
}

/**
 * Backups: each service's data goes into both stores of the writing site (the
 * two storage pair members, pair not dissolved), and daily backups are kept at
 * least 30 days. `jobs` defaults to the planned jobs; a stack checks its own.
 */
export function backupProblems(
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
  jobs: ReadonlyArray<PlannedJob> = planJobs(footprint, sites),
): string[] {
  const index = siteIndex(sites);
  const problems: string[] = [];
  for (const placement of placeAll(footprint, sites)) {
    const { service, index: i } = placement;
    const site = index.get(placement.writer);
    if (!site) continue;
    const ref = serviceRef(service, i);
    const pair = site.pairs.find((p) => p.role === "storage");
    if (!pair) continue;
    if (pair.dissolved) {
      problems.push(
        line(
          ref,
          `backups at ${site.name} need two independent stores but the storage pair ${pair.name} is dissolved: restore it (pairs.storage.dissolved: false in ${site.file})`,
        ),
      );
    }
    const days = site.storage.backups.daily;
    if (days < MIN_BACKUP_DAYS) {
      problems.push(
        line(ref, `backups at ${site.name} are kept ${days} days: set storage.backups.daily to ${MIN_BACKUP_DAYS} or more in ${site.file}`),
      );
    }
    const stores = [
      ...new Set(
        jobs
          .filter((j) => j.kind === "backup" && j.service === service.name && j.site === site.name && j.store.placement === "local")
          .map((j) => (j.kind === "backup" ? j.store.host : "")),
      ),
    ].sort();
    // One copy leaves the site: a fire or a provider's outage at the writer must not take every backup with it.
    const offsite = jobs.some(
      (j) => j.kind === "backup" && j.service === service.name && j.site === site.name && j.store.placement === "offsite",
    );
    if (!offsite && placement.paths.some((p) => index.has(p.to))) {
      problems.push(line(ref, `backups at ${site.name} never leave the site: back up one copy into the standby site's store`));
    }
    const missing = pair.members.filter((m) => !stores.includes(m));
    if (missing.length > 0) {
      problems.push(
        line(
          ref,
          `backups at ${site.name} go into ${stores.length === 0 ? "no store" : stores.join(", ")} only: back up into both stores ${pair.members.join(" and ")} (missing ${missing.join(", ")})`,
        ),
      );
    }
  }
  return problems;
}

/**
 * Tunnels: every replication path runs through a site-to-site tunnel between
 * its two sites, and each end of that tunnel carries exactly the other site's
 * supernet (its AllowedIPs, parsed from the rendered configuration).
 */
export function tunnelProblems(
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
  tunnels: ReadonlyArray<TunnelPlan> = planTunnels(footprint, sites),
): string[] {
  const index = siteIndex(sites);
  const byPair = new Map<string, TunnelPlan>();
  for (const t of tunnels) byPair.set(pairKey(t.ends[0].site, t.ends[1].site), t);
  const problems: string[] = [];
  for (const placement of placeAll(footprint, sites)) {
    const ref = serviceRef(placement.service, placement.index);
    for (const path of placement.paths) {
      const from = index.get(path.from);
      const to = index.get(path.to);
      if (!from || !to || from.name === to.name) continue;
      const tunnel = byPair.get(pairKey(from.name, to.name));
      if (!tunnel) {
        const partners = partnersOf(from, sites).map((s) => s.name);
        const fix =
          path.purpose === "standby"
            ? `choose ${partners.length > 0 ? partners.join(" or ") : from.partner} (the ${partners.length > 1 ? "partners" : "partner"} of ${from.name}) as the standby, or make ${from.name} and ${to.name} partners in their site files`
            : `plan the migration tunnel between them (planTunnels)`;
        problems.push(line(ref, `no site-to-site tunnel connects ${from.name} and ${to.name} for its ${path.purpose} copy: ${fix}`));
        continue;
      }
      for (const [local, peer] of [
        [from, to],
        [to, from],
      ] as const) {
        const text = tunnel.configs[local.name];
        if (text === undefined) {
          problems.push(line(ref, `tunnel ${tunnel.name} has no configuration for ${local.name}: render both ends`));
          continue;
        }
        const parsed = parseWireGuardConfig(text);
        const carried = parsed.peers.flatMap((p) => p.allowedIps);
        const extra = [...new Set(carried.filter((c) => c !== peer.supernet))].sort();
        if (extra.length > 0) {
          problems.push(
            line(
              ref,
              `tunnel ${tunnel.name} at ${local.name} carries ${extra.join(", ")} besides ${peer.name}'s supernet ${peer.supernet}: AllowedIPs must list only ${peer.supernet}`,
            ),
          );
        }
        if (!carried.includes(peer.supernet)) {
          problems.push(
            line(
              ref,
              `tunnel ${tunnel.name} at ${local.name} does not carry ${peer.name}'s supernet ${peer.supernet}: set AllowedIPs = ${peer.supernet}`,
            ),
          );
        }
      }
    }
  }
  return problems;
}

/**
 * Pairs: at every site that hosts a service, each member of an active/passive
 * pair has a heartbeat address on the pair's dedicated segment, and the site
 * gives its hosts at least two distinct, shared time sources.
 */
export function pairProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const index = siteIndex(sites);
  const hosted = new Map<string, Set<string>>();
  for (const placement of placeAll(footprint, sites)) {
    for (const p of placement.sites) hosted.set(p.site, (hosted.get(p.site) ?? new Set()).add(placement.service.name));
  }
  const problems: string[] = [];
  for (const siteName of [...hosted.keys()].sort()) {
    const site = index.get(siteName);
    if (!site) continue;
    const services = [...hosted.get(siteName)!].sort().join(", ");
    for (const pair of site.pairs) {
      if (pair.dissolved) continue;
      const segment = site.segments.find((s) => s.name === pair.heartbeatSegment && s.kind === "heartbeat");
      for (const member of pair.members) {
        const address = pair.heartbeat[member];
        const parsed = address ? parseAddress(address) : undefined;
        if (!segment || parsed === undefined || !containsAddress(cidr(segment.cidr), parsed)) {
          problems.push(
            `${site.file}: pairs.${pair.role}: ${member} has no heartbeat address on the dedicated segment ${pair.heartbeatSegment} (${site.name} hosts ${services}): give both members of ${pair.name} an address there`,
          );
        }
      }
    }
    const distinct = [...new Set(site.time.servers)];
    if (distinct.length < 2) {
      problems.push(
        `${site.file}: time.servers: pair members need at least two distinct shared time sources, found ${distinct.length} (${distinct.join(", ")}; ${site.name} hosts ${services}): list two or more`,
      );
    }
  }
  return problems;
}

/** Inputs a stack may supply instead of the planned ones, so that what it deploys is what is checked. */
export interface CheckInputs {
  readonly jobs?: ReadonlyArray<PlannedJob>;
  readonly tunnels?: ReadonlyArray<TunnelPlan>;
}

/**
 * Workloads against the sites that run them: a container that publishes ports
 * runs only where Compose runs it (the Kubernetes runtime publishes nothing on
 * the hosts; its ingress controllers are the only host listeners). Every site
 * a service may run at counts: primary, standby, migration target and the
 * standby after the move.
 */
export function workloadProblems(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string[] {
  const index = siteIndex(sites);
  const problems: string[] = [];
  footprint.services.forEach((service, i) => {
    if (!resolvable(service, index)) return;
    const publishing = service.workload.containers.filter((c) => c.publish.length > 0).map((c) => c.name);
    if (publishing.length === 0) return;
    for (const { field, site } of siteReferences(service)) {
      if (index.get(site)!.virtualization.runtime !== "kubernetes") continue;
      problems.push(
        line(
          serviceRef(service, i),
          `workload: ${publishing.join(", ")} publish ports, but ${field} ${site} runs Kubernetes, which publishes none on its hosts: serve the service from compose sites or drop publish`,
        ),
      );
    }
  });
  return problems;
}

/**
 * Every policy, in a fixed order: references, placement, concentration,
 * replication, backups, tunnels, pairs, workloads. Services with unknown sites are only
 * reported by the reference check.
 */
export function checkFootprint(footprint: Footprint, sites: ReadonlyArray<SiteModel>, inputs: CheckInputs = {}): string[] {
  return [
    ...referenceProblems(footprint, sites),
    ...placementProblems(footprint, sites),
    ...concentrationProblems(footprint, sites),
    ...replicationProblems(footprint, sites),
    ...backupProblems(footprint, sites, inputs.jobs),
    ...tunnelProblems(footprint, sites, inputs.tunnels),
    ...pairProblems(footprint, sites),
    ...workloadProblems(footprint, sites),
    ...nameServerProblems(sites),
  ];
}
