/**
 * What the footprint puts on one site's hosts: the proxy's backends for the
 * services the site answers, the replication and backup timers on the storage
 * hosts, and the database replication settings the service deployments read.
 * Pure: site services in, rendered files out.
 */
import { SiteModel } from "../model/model";
import { ProxiedService, RenderedFile } from "../render/types";
import { PlannedJob, jobRunner, renderDatabaseReplication, renderSiteSystemdUnits } from "./jobs";
import { SiteService } from "./services";

/**
 * Ports of the ingress on the virtualization hosts: read-write traffic on one,
 * read-only traffic on the other (the application instance behind it runs
 * with writes disabled). A standby answers its names on the read-only port
 * until it is promoted, which moves them to the read-write port.
 */
export const INGRESS_PORTS = { readWrite: 8443, readOnly: 8444 } as const;

/**
 * The proxy's services for a site: one backend per service and access mode,
 * named `<service>` (read-write) or `<service>-ro` (reads only), holding the
 * names the site answers that way. Sorted by backend name.
 */
export function proxiedServices(services: ReadonlyArray<SiteService>): ProxiedService[] {
  const backends: ProxiedService[] = [];
  for (const entry of services) {
    const writable = entry.names.filter((n) => n.writes).map((n) => n.name);
    const readOnly = entry.names.filter((n) => n.reads && !n.writes).map((n) => n.name);
    if (writable.length > 0) backends.push({ name: entry.service, hostnames: [...writable].sort(), port: INGRESS_PORTS.readWrite });
    if (readOnly.length > 0) backends.push({ name: `${entry.service}-ro`, hostnames: [...readOnly].sort(), port: INGRESS_PORTS.readOnly });
  }
  return backends.sort((a, b) => a.name.localeCompare(b.name));
}

const SYSTEMD_DIR = "/etc/systemd/system";

/**
 * The files the footprint adds per host name: systemd units of the periodic
 * jobs on both storage hosts (where the site runs its jobs under systemd; a
 * Kubernetes site runs them as CronJobs instead), and the database replication
 * settings on every virtualization host, where the databases run.
 */
export function footprintHostFiles(model: SiteModel, jobs: ReadonlyArray<PlannedJob>): Record<string, RenderedFile[]> {
  const files: Record<string, RenderedFile[]> = {};
  const own = jobs.filter((j) => j.site === model.name);
  const units: RenderedFile[] =
    jobRunner(model) === "systemd"
      ? renderSiteSystemdUnits(own).map((unit) => {
          const name = unit.path.slice(SYSTEMD_DIR.length + 1);
          // A timer is enabled and started; its service only needs systemd to know it.
          const timer = name.endsWith(".timer");
          const reload = timer
            ? ["sh", "-c", `systemctl daemon-reload && systemctl enable --now --quiet ${name}`]
            : ["systemctl", "daemon-reload"];
          // A job that moved away (promotion, migration) must stop here, or it would copy stale data over the new primary.
          const remove = timer ? ["systemctl", "disable", "--now", name] : ["systemctl", "stop", name];
          return { path: unit.path, content: unit.content, mode: "0644", secret: false, delivery: "ssh" as const, reload, remove };
        })
      : [];
  const databases: RenderedFile[] = own
    .filter((j) => j.kind === "database-replication")
    .map((job) => {
      const rendered = renderDatabaseReplication(job);
      return { path: rendered.path, content: rendered.content, mode: "0644", secret: false, delivery: "ssh" as const };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
  for (const host of model.hosts) {
    if (host.role === "storage" && units.length > 0) files[host.name] = units;
    if (host.role === "virtualization" && databases.length > 0) files[host.name] = databases;
  }
  return files;
}
