/**
 * The storage pair's NFS exports from the footprint: every file tree the site
 * holds (a service whose primary, standby or migration end is this site: the
 * trees its file copies send or receive) becomes one ganesha EXPORT for the
 * application segment (`lib/render/ganesha.ts`). Pure: jobs in, one rendered
 * file out.
 */
import type { SiteModel } from "../model/model";
import { ExportedTree, GANESHA_CONF, ganeshaCheckCommand, renderGaneshaConfig } from "../render/ganesha";
import { NFS_SERVER_UNIT } from "../render/storage";
import type { RenderedFile } from "../render/types";
import type { PlannedJob } from "./jobs";

/**
 * The trees a site holds, one per path, sorted by path: the ends of the file
 * copies it sends (primary, migration source) or receives (standby, migration
 * target). A standby exports its copy too: its read-only instance reads it.
 */
export function siteExportTrees(model: SiteModel, jobs: ReadonlyArray<PlannedJob>): ExportedTree[] {
  const trees = new Map<string, ExportedTree>();
  for (const job of jobs) {
    if (job.site !== model.name || (job.kind !== "file-copy" && job.kind !== "file-receive")) continue;
    if (!trees.has(job.path)) trees.set(job.path, { path: job.path, what: `${job.service}/${job.tree}` });
  }
  return [...trees.values()].sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * `/etc/ganesha/ganesha.conf` for one storage host, with its checker
 * (`ganeshaCheckCommand`). The reload restarts ganesha only where it runs
 * (the active member; `try-restart`), so a changed export list takes effect
 * without starting the server on the member that stands by.
 */
export function nfsExportFile(model: SiteModel, hostName: string, jobs: ReadonlyArray<PlannedJob>): RenderedFile {
  return {
    path: GANESHA_CONF,
    content: renderGaneshaConfig(model, hostName, siteExportTrees(model, jobs)),
    mode: "0644",
    secret: false,
    delivery: "ssh",
    check: { command: ganeshaCheckCommand() },
    reload: ["systemctl", "try-restart", `${NFS_SERVER_UNIT}.service`],
  };
}
