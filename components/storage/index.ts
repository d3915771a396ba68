/**
 * The storage pair: two independent stores on different physical hosts, an
 * NFS export to the application segment behind the pair's VIP, snapshots,
 * backups kept at least 30 days, and replication to the partner site (and
 * from the sites it stands by for).
 */
import * as pulumi from "@pulumi/pulumi";
import { SiteModel } from "../../lib/model/model";
import { FailoverPair } from "../failover-pair";
import { Host, HostContext, createRoleHosts } from "../host";
import { Placement, StoreDisk } from "../provisioning";
import { StoragePlan, storagePlan } from "./plan";

export interface StorageArgs {
  /** The site's provisioning context. */
  readonly context: HostContext;
  /**
   * The partner sites' models (`partnersOf`), the own partner first: its storage VIP is the replication target; the
   * others (the sites this one stands by for) replicate into this pair.
   */
  readonly partners: ReadonlyArray<SiteModel>;
}

export class Storage extends pulumi.ComponentResource {
  /** The two stores' hosts by host name. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** Their failure domains. */
  public readonly placements: Readonly<Record<string, Placement>>;
  public readonly pair: FailoverPair;
  /** Each store's own disk by host name (independent: nothing shared between the stores). */
  public readonly disks: Readonly<Record<string, StoreDisk>>;
  /** Export, snapshots, backups, local sync and partner replication: for the renderers. */
  public readonly plan: StoragePlan;

  constructor(name: string, args: StorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:storage:Storage", name, {}, opts);
    const { model, provisioning } = args.context;
    const pairModel = model.pairs.find((p) => p.role === "storage");
    if (!pairModel) throw new Error(`${model.name} has no storage pair`);
    this.plan = storagePlan(model, args.partners);
    const role = createRoleHosts(name, "storage", args.context, this);
    this.hosts = role.hosts;
    this.placements = role.placements;
    const disks: Record<string, StoreDisk> = {};
    for (const host of model.hosts.filter((h) => h.role === "storage")) {
      disks[host.name] = provisioning.createStoreDisk(
        `${name}-${host.ordinal}-data`,
        model,
        host,
        this.hosts[host.name],
        model.storage.capacityGb,
        this,
      );
    }
    this.disks = disks;
    this.pair = new FailoverPair(`${name}-pair`, { pair: pairModel, model, members: this.hosts, provisioning }, { parent: this });
    this.registerOutputs({ hosts: this.hosts, placements: this.placements, pair: this.pair, disks: this.disks, plan: this.plan });
  }
}
