/**
 * One site's monitoring plan (`MonitoringPlan`, plan.ts) from its model and
 * the footprint: the one function that decides what a site's Prometheus
 * watches. Prometheus and Alertmanager run on both storage hosts (each scrapes
 * the whole site; the two Alertmanagers gossip so a notification leaves once):
 * the storage pair is the pair that already keeps state and has the disk.
 * Pure.
 */
import type { SiteModel } from "../model/model";
import { MONITORING_PORTS } from "../render/policy";
import { birdPeerSymbol } from "../render/bird";
import type { Footprint } from "../footprint/schema";
import { isPeriodic, PlannedJob } from "../footprint/jobs";
import { siteTunnels } from "../footprint/wireguard";
import { MonitoringPlan, ScrapeTarget, WatchedJob } from "./plan";

/** Seconds between scrapes and rule evaluations: a replication alert fires within the RPO plus this. */
export const SCRAPE_INTERVAL_SECONDS = 15;
/** A backup older than this (s) alerts: a daily backup that missed one run, with two hours to spare. */
export const BACKUP_MAX_AGE_SECONDS = 26 * 3600;
/** Days before a certificate's notAfter its alert fires. */
export const CERTIFICATE_WARNING_DAYS = 21;

const mgmtOf = (model: SiteModel, host: string) =>
  model.hosts.find((h) => h.name === host)?.interfaces.find((i) => i.segment === "mgmt")?.address;

/**
 * The plan for `model`. `jobs`: the site's planned jobs (`siteServices(...).flatMap(s => s.jobs)`);
 * only the jobs systemd runs here are watched (a Kubernetes site's backups are CronJobs, which node exporter cannot see).
 */
export function monitoringPlan(
  model: SiteModel,
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
  jobs: ReadonlyArray<PlannedJob>,
): MonitoringPlan {
  const target = (host: string, port: number): ScrapeTarget[] => {
    const address = mgmtOf(model, host);
    return address ? [{ host, target: `${address}:${port}` }] : [];
  };
  const hosts = [...model.hosts].sort((a, b) => a.name.localeCompare(b.name));
  const storage = model.pairs.find((p) => p.role === "storage");
  const servers = (storage?.members ?? [])
    .map((host) => ({ host, address: mgmtOf(model, host) }))
    .filter((s): s is { host: string; address: string } => s.address !== undefined);
  const bgp = model.public.mode === "own-prefix" && model.public.routing.kind === "bgp" ? model.public.routing.peers : [];
  const firewalls = hosts.filter((h) => h.role === "firewall").map((h) => h.name);
  const rpo = new Map(footprint.services.map((s) => [s.name, s.recovery.rpoMinutes]));
  const watched: WatchedJob[] = jobs
    .filter(isPeriodic)
    .filter((j) => j.site === model.name && j.runner === "systemd")
    .map((j) => ({
      job: `standort-${j.key}`,
      kind: j.kind === "file-copy" ? ("replication" as const) : ("backup" as const),
      service: j.service,
      hosts: [...j.hosts],
      maxAgeSeconds: j.kind === "file-copy" ? (rpo.get(j.service) ?? 15) * 60 : BACKUP_MAX_AGE_SECONDS,
    }))
    .sort((a, b) => a.job.localeCompare(b.job));
  // One per tunnel: it runs on whichever firewall is active, and the rule takes the freshest handshake of either.
  const tunnels =
    firewalls.length === 0
      ? []
      : siteTunnels(footprint, sites, model.name).map((t) => ({
          host: firewalls[0],
          interface: t.name,
          peer: t.ends.find((e) => e.site !== model.name)!.site,
        }));
  return {
    site: model.name,
    servers,
    scrapeIntervalSeconds: SCRAPE_INTERVAL_SECONDS,
    targets: {
      node: hosts.flatMap((h) => target(h.name, MONITORING_PORTS.nodeExporter)),
      haproxy: hosts.filter((h) => h.role === "proxy").flatMap((h) => target(h.name, MONITORING_PORTS.haproxyExporter)),
      bird: bgp.length > 0 ? firewalls.flatMap((h) => target(h, MONITORING_PORTS.birdExporter)) : [],
    },
    jobs: watched,
    pairs: model.pairs.filter((p) => !p.dissolved).map((p) => ({ pair: p.role, members: [...p.members] })),
    bgpSessions: bgp.flatMap((peer) => firewalls.map((host) => ({ host, protocol: birdPeerSymbol(peer.name) }))),
    tunnels,
    certificateWarningDays: CERTIFICATE_WARNING_DAYS,
  };
}
