/**
 * What the footprint looks like to a reader: a text report for the plan, a
 * Mermaid diagram for documentation, and the effect of losing a provider or a
 * country. Pure and byte-stable: everything is sorted.
 */
import { SiteModel } from "../model/model";
import { Footprint } from "./schema";
import { ProviderId, ServicePlacement, placeAll, providerOf, siteIndex } from "./placement";
import { PlannedJob, planJobs } from "./jobs";
import { checkFootprint, primaryShares } from "./policies";

/** What is lost: every site of a provider, or every site in a country. */
export type Loss = { readonly provider: ProviderId } | { readonly country: string };

/**
 * What a service keeps after a loss: `unaffected` (every copy alive),
 * `standby-lost` (still writes, a copy is gone), `read-only` (the writing site
 * is gone, a live copy answers read-only until promoted), `no-live-copy`.
 */
export type LossOutcome = "unaffected" | "standby-lost" | "read-only" | "no-live-copy";

export interface ServiceAfterLoss {
  readonly service: string;
  readonly outcome: LossOutcome;
  /** Sites still holding a live copy, sorted. */
  readonly liveAt: ReadonlyArray<string>;
}

export interface LossReport {
  readonly lostSites: ReadonlyArray<string>;
  readonly services: ReadonlyArray<ServiceAfterLoss>;
  /** Services with at least one live copy. */
  readonly keepLiveCopy: ReadonlyArray<string>;
  /** Services that run read-only until a standby is promoted. */
  readonly readOnly: ReadonlyArray<string>;
  readonly noLiveCopy: ReadonlyArray<string>;
}

function lostBy(site: SiteModel, loss: Loss): boolean {
  return "provider" in loss ? providerOf(site) === loss.provider : site.country === loss.country;
}

/** Which outcome a placed service has when only `alive` sites remain. */
function outcomeOf(placement: ServicePlacement, alive: ReadonlySet<string>): ServiceAfterLoss {
  const liveAt = placement.copies.filter((s) => alive.has(s)).sort();
  let outcome: LossOutcome;
  if (liveAt.length === 0) outcome = "no-live-copy";
  else if (!alive.has(placement.writer)) outcome = "read-only";
  else outcome = liveAt.length === placement.copies.length ? "unaffected" : "standby-lost";
  return { service: placement.service.name, outcome, liveAt };
}

/**
 * Simulates losing every site of a provider or a country by removing those
 * sites: which services keep a live copy, which would run read-only and need
 * a promotion, which would have none left.
 */
export function simulateLoss(footprint: Footprint, sites: ReadonlyArray<SiteModel>, loss: Loss): LossReport {
  const lostSites = sites
    .filter((s) => lostBy(s, loss))
    .map((s) => s.name)
    .sort();
  const alive = new Set(sites.filter((s) => !lostBy(s, loss)).map((s) => s.name));
  const services = placeAll(footprint, sites)
    .map((p) => outcomeOf(p, alive))
    .sort((a, b) => a.service.localeCompare(b.service));
  const named = (pick: (s: ServiceAfterLoss) => boolean) => services.filter(pick).map((s) => s.service);
  return {
    lostSites,
    services,
    keepLiveCopy: named((s) => s.outcome !== "no-live-copy"),
    readOnly: named((s) => s.outcome === "read-only"),
    noLiveCopy: named((s) => s.outcome === "no-live-copy"),
  };
}

/** Every provider and every country of the sites, as losses to simulate, sorted. */
export function possibleLosses(sites: ReadonlyArray<SiteModel>): Loss[] {
  const providers = [...new Set(sites.map(providerOf))].sort();
  const countries = [...new Set(sites.map((s) => s.country))].sort();
  return [...providers.map((provider) => ({ provider })), ...countries.map((country) => ({ country }))];
}

function table(rows: ReadonlyArray<ReadonlyArray<string>>, indent = "  "): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `${indent}${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join("  ")}`.trimEnd());
}

function percent(count: number, total: number): string {
  return `${Math.round((count / total) * 100)}%`;
}

interface PathSummary {
  readonly from: string;
  readonly to: string;
  readonly service: string;
  readonly purpose: string;
  readonly tunnel: string;
  readonly files: string;
  readonly databases: string;
}

function pathSummaries(jobs: ReadonlyArray<PlannedJob>, placements: ReadonlyArray<ServicePlacement>): PathSummary[] {
  const rows: PathSummary[] = [];
  for (const placement of placements) {
    for (const path of placement.paths) {
      const mine = jobs.filter((j) => j.service === placement.service.name);
      const copies = mine.filter((j) => j.kind === "file-copy" && j.site === path.from && j.target.site === path.to);
      const dbs = mine.filter(
        (j) => j.kind === "database-replication" && j.side === "source" && j.site === path.from && j.peer.site === path.to,
      );
      const first = [...copies, ...dbs][0];
      const tunnel = first && first.kind !== "backup" ? first.tunnel : "-";
      rows.push({
        from: path.from,
        to: path.to,
        service: placement.service.name,
        purpose: path.purpose,
        tunnel,
        files: copies.map((j) => (j.kind === "file-copy" ? `${j.tree} every ${j.intervalMinutes} min` : "")).join(", ") || "-",
        databases: dbs.map((j) => (j.kind === "database-replication" ? `${j.database} (${j.engine} ${j.method})` : "")).join(", ") || "-",
      });
    }
  }
  return rows.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to) || a.service.localeCompare(b.service));
}

function describeLoss(loss: Loss): string {
  return "provider" in loss ? `provider ${loss.provider}` : `country ${loss.country}`;
}

/**
 * The footprint as text: services and where each runs and stands by,
 * replication paths with intervals, share of primaries per provider and per
 * country, the effect of losing each provider and country, and violations.
 */
export function renderFootprintText(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string {
  const index = siteIndex(sites);
  const placements = placeAll(footprint, sites);
  const jobs = planJobs(footprint, sites);
  const where = (name: string) => {
    const site = index.get(name);
    return site ? `${name} (${site.country}, ${providerOf(site)})` : `${name} (unknown site)`;
  };
  const out: string[] = [];
  out.push(
    `footprint: ${footprint.services.length} services, standby names under ${footprint.domain}, max primary share ${percent(footprint.policy.maxPrimaryShare, 1)}`,
  );
  out.push("");
  out.push("services");
  out.push(
    ...table([
      ["service", "public name", "primary", "standby", "mode", "rpo", "rto", "writes at"],
      ...placements.map((p) => [
        p.service.name,
        p.service.publicName,
        where(p.service.primary),
        where(p.service.standby),
        p.service.mode,
        `${p.service.recovery.rpoMinutes} min`,
        `${p.service.recovery.rtoMinutes} min`,
        p.writer,
      ]),
    ]),
  );
  const migrating = placements.filter((p) => p.service.migration);
  if (migrating.length > 0) {
    out.push("");
    out.push("migrations");
    for (const p of migrating) {
      const m = p.service.migration!;
      const after = m.standby !== undefined && m.standby !== p.service.standby ? `, standby afterwards ${m.standby}` : "";
      out.push(`  ${p.service.name}: ${p.service.primary} -> ${m.to}, step ${m.step}${after}`);
    }
  }
  out.push("");
  out.push("names answered per site");
  const nameRows: string[][] = [["site", "service", "role", "names"]];
  for (const p of placements) {
    for (const s of p.sites) {
      const names =
        s.names
          .map((n) => `${n.name} (${n.reads && n.writes ? "read-write" : n.reads ? "reads" : n.writes ? "writes" : "none"})`)
          .join(", ") || "-";
      nameRows.push([s.site, p.service.name, s.role, names]);
    }
  }
  out.push(...table([nameRows[0], ...nameRows.slice(1).sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]))]));
  out.push("");
  out.push("replication paths");
  const paths = pathSummaries(jobs, placements);
  out.push(
    ...table([
      ["from", "to", "service", "purpose", "tunnel", "files", "databases"],
      ...paths.map((r) => [r.from, r.to, r.service, r.purpose, r.tunnel, r.files, r.databases]),
    ]),
  );
  out.push("");
  out.push("backups");
  const backups = jobs.filter((j) => j.kind === "backup");
  out.push(
    ...table([
      ["service", "site", "stores", "daily", "weekly", "monthly"],
      ...[...new Set(backups.map((j) => `${j.service}|${j.site}`))].sort().map((key) => {
        const mine = backups.filter((j) => `${j.service}|${j.site}` === key);
        const first = mine[0];
        const retention = first.kind === "backup" ? first.retention : { daily: 0, weekly: 0, monthly: 0 };
        const stores = mine.map((j) => (j.kind === "backup" ? j.store.host : "")).join(", ");
        return [first.service, first.site, stores, String(retention.daily), String(retention.weekly), String(retention.monthly)];
      }),
    ]),
  );
  out.push("");
  out.push("share of primaries");
  const shares = primaryShares(footprint, sites);
  const shareRows: string[][] = [["by", "holder", "primaries", "share", "services"]];
  for (const [kind, map] of [
    ["provider", shares.provider],
    ["country", shares.country],
  ] as const) {
    for (const [key, services] of map) {
      shareRows.push([
        kind,
        key,
        `${services.length}/${shares.total}`,
        percent(services.length, shares.total),
        [...services].sort().join(", "),
      ]);
    }
  }
  out.push(...table(shareRows));
  out.push("");
  out.push("losing a provider or a country");
  const lossRows: string[][] = [["lost", "sites", "read-only until promoted", "standby lost", "no live copy"]];
  for (const loss of possibleLosses(sites)) {
    const report = simulateLoss(footprint, sites, loss);
    const list = (xs: ReadonlyArray<string>) => (xs.length > 0 ? xs.join(", ") : "-");
    lossRows.push([
      describeLoss(loss),
      list(report.lostSites),
      list(report.readOnly),
      list(report.services.filter((s) => s.outcome === "standby-lost").map((s) => s.service)),
      list(report.noLiveCopy),
    ]);
  }
  out.push(...table(lossRows));
  out.push("");
  const problems = checkFootprint(footprint, sites);
  out.push(problems.length === 0 ? "violations: none" : `violations: ${problems.length}`);
  out.push(...problems.map((p) => `  ${p}`));
  return `${out.join("\n")}\n`;
}

function mermaidId(prefix: string, text: string): string {
  return `${prefix}_${text.replace(/[^A-Za-z0-9]/g, "_")}`;
}

/**
 * The footprint as a Mermaid flowchart: sites grouped by country, then
 * provider; one edge per replication path labelled with the service and its
 * file interval (dashed for a migration).
 */
export function renderFootprintMermaid(footprint: Footprint, sites: ReadonlyArray<SiteModel>): string {
  const placements = placeAll(footprint, sites);
  const jobs = planJobs(footprint, sites);
  const out = ["flowchart LR"];
  const countries = [...new Set(sites.map((s) => s.country))].sort();
  for (const country of countries) {
    out.push(`  subgraph ${mermaidId("country", country)}["${country}"]`);
    const inCountry = sites.filter((s) => s.country === country);
    for (const provider of [...new Set(inCountry.map(providerOf))].sort()) {
      out.push(`    subgraph ${mermaidId("provider", `${country}_${provider}`)}["${provider}"]`);
      for (const site of inCountry.filter((s) => providerOf(s) === provider).sort((a, b) => a.name.localeCompare(b.name))) {
        out.push(`      ${mermaidId("site", site.name)}["${site.name} (${site.code})"]`);
      }
      out.push("    end");
    }
    out.push("  end");
  }
  const edges: string[] = [];
  for (const p of placements) {
    for (const path of p.paths) {
      const intervals = jobs
        .filter((j) => j.kind === "file-copy" && j.service === p.service.name && j.site === path.from && j.target.site === path.to)
        .map((j) => (j.kind === "file-copy" ? j.intervalMinutes : 0));
      const label = `${p.service.name}${path.purpose === "migration" ? " migration" : ""}: ${intervals.length > 0 ? `files every ${Math.max(...intervals)} min` : "databases only"}`;
      const arrow = path.purpose === "migration" ? "-.->" : "-->";
      edges.push(`  ${mermaidId("site", path.from)} ${arrow}|"${label}"| ${mermaidId("site", path.to)}`);
    }
  }
  out.push(...edges.sort());
  return `${out.join("\n")}\n`;
}
