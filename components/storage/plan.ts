/**
 * The storage pair as data: two independent stores in separate failure
 * domains, an NFS export to the application segment, snapshots, backups kept
 * at least 30 days, replication to the partner site's storage, and the sites
 * whose replication it receives besides its partner's. Pure.
 */
import { SiteModel } from "../../lib/model/model";
import { InputError } from "../../lib/model/validate";

/** Backups are kept at least this many days (the mission's rule). */
export const MIN_BACKUP_DAYS = 30;
/** Where the export's data lives on each store. */
export const EXPORT_PATH = "/srv/data";

export interface StoragePlan {
  readonly export: {
    readonly protocol: "nfs4";
    /** The storage pair's VIP in the data segment: clients mount it, whichever store is active. */
    readonly address: string;
    readonly path: string;
    /** Only the application segment mounts it. */
    readonly clients: ReadonlyArray<string>;
    readonly options: ReadonlyArray<string>;
  };
  readonly snapshots: { readonly intervalMinutes: number; readonly keep: number; readonly coversHours: number };
  readonly backups: { readonly daily: number; readonly weekly: number; readonly monthly: number; readonly keptDays: number };
  /** The passive store receives the active store's snapshots: two independent copies at the site. */
  readonly localSync: { readonly from: string; readonly to: string; readonly intervalMinutes: number } | undefined;
  readonly replication: {
    readonly partnerSite: string;
    /** The partner's storage VIP: whichever store is active there receives. */
    readonly target: string;
    readonly partnerSupernet: string;
    readonly intervalMinutes: number;
    readonly path: string;
  };
  /**
   * The other sites this one stands by for (`standbyFor`): each replicates into this storage pair through its own
   * tunnel, into `path`. Absent where the site stands by only for its own partner.
   */
  readonly standbyFor?: ReadonlyArray<{ readonly site: string; readonly sourceSupernet: string; readonly path: string }>;
}

function storageVip(model: SiteModel): string {
  const vip = model.pairs.find((p) => p.role === "storage")?.vips.find((v) => v.segment === "data");
  if (!vip) throw new Error(`${model.name} has no storage VIP in the data segment`);
  return vip.address;
}

/**
 * @param partners the site's partners (`partnersOf`), its own partner first: it replicates to the first and receives
 *   from the others too.
 */
export function storagePlan(model: SiteModel, partners: ReadonlyArray<SiteModel>): StoragePlan {
  const [partner, ...others] = partners;
  if (!partner) throw new Error(`${model.name}: the partner ${model.partner}'s model is required`);
  if (partner.name !== model.partner) throw new Error(`${partner.name} is not the partner of ${model.name} (${model.partner} is)`);
  for (const other of others) {
    if (other.partner !== model.name) throw new Error(`${other.name} is not a partner of ${model.name} (its partner is ${other.partner})`);
  }
  if (new Set(partners.map((p) => p.name)).size !== partners.length) throw new Error(`${model.name}: a partner is listed twice`);
  const { snapshots, backups } = model.storage;
  if (backups.daily < MIN_BACKUP_DAYS) {
    throw new InputError([`${model.file}: storage.backups.daily: ${backups.daily} keeps backups less than ${MIN_BACKUP_DAYS} days`]);
  }
  const pair = model.pairs.find((p) => p.role === "storage");
  const app = model.segments.find((s) => s.name === "app");
  if (!pair || !app) throw new Error(`${model.name} has no storage pair or app segment`);
  return {
    export: {
      protocol: "nfs4",
      address: storageVip(model),
      path: EXPORT_PATH,
      clients: [app.cidr],
      options: ["rw", "sync", "no_subtree_check", "root_squash"],
    },
    snapshots: {
      intervalMinutes: snapshots.intervalMinutes,
      keep: snapshots.keep,
      coversHours: (snapshots.intervalMinutes * snapshots.keep) / 60,
    },
    backups: {
      daily: backups.daily,
      weekly: backups.weekly,
      monthly: backups.monthly,
      keptDays: Math.max(backups.daily, backups.weekly * 7, backups.monthly * 30),
    },
    localSync: pair.dissolved ? undefined : { from: pair.active, to: pair.passive, intervalMinutes: snapshots.intervalMinutes },
    replication: {
      partnerSite: partner.name,
      target: storageVip(partner),
      partnerSupernet: partner.supernet,
      intervalMinutes: model.storage.replicationIntervalMinutes,
      path: `${EXPORT_PATH}/${model.name}`,
    },
    ...(others.length > 0
      ? { standbyFor: others.map((o) => ({ site: o.name, sourceSupernet: o.supernet, path: `${EXPORT_PATH}/${o.name}` })) }
      : {}),
  };
}
