/**
 * The storage pair's NFS exports from the footprint: every file tree the site
 * holds (a service whose primary, standby or migration end is this site: the
 * trees its file copies send or receive) becomes one ganesha EXPORT for the
 * application segment (`lib/render/ganesha.ts`). Pure: jobs in, one rendered
 * file out.
 */
import { STORAGE_ACTIVE_FLAG } from "./jobs";
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
 * (`ganeshaCheckCommand`). The package enables and starts ganesha at install;
 * the reload takes it out of the boot (the failover script starts it, after the
 * device is promoted and mounted: started at boot it would export the root
 * filesystem's `/srv`), restarts it on the active member so a changed export
 * list takes effect, and stops it on the member that stands by.
 */
export function nfsExportFile(model: SiteModel, hostName: string, jobs: ReadonlyArray<PlannedJob>): RenderedFile {
  return {
    path: GANESHA_CONF,
    content: renderGaneshaConfig(model, hostName, siteExportTrees(model, jobs)),
    mode: "0644",
    secret: false,
    delivery: "ssh",
    check: { command: ganeshaCheckCommand() },
    reload: [
      "sh",
      "-c",
      `systemctl disable --quiet ${NFS_SERVER_UNIT}.service; if [ -e ${STORAGE_ACTIVE_FLAG} ]; then systemctl restart ${NFS_SERVER_UNIT}.service; else systemctl stop ${NFS_SERVER_UNIT}.service; fi`,
    ],
  };
}
