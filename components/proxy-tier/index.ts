/**
 * The HAProxy pair behind a failover address: two proxy hosts in separate
 * failure domains, listening on any address, with health-checked backends
 * on the virtualization hosts and sized for the mission's peak.
 */
import * as pulumi from "@pulumi/pulumi";
import { HostModel } from "../../lib/model/model";
import { ProxiedService } from "../../lib/render/types";
import { FailoverPair, PublicAddressRequest } from "../failover-pair";
import { Host, HostContext, createRoleHosts } from "../host";
import { Placement } from "../provisioning";
import { MISSION_LOAD, ProxyLoad, ProxyPlan, proxyPlan } from "./plan";

export interface ProxyTierArgs {
  /** The site's provisioning context. */
  readonly context: HostContext;
  /** The hosts that serve the site's services (for now: the virtualization hosts). */
  readonly backends: ReadonlyArray<HostModel>;
  /** Services routed by SNI to the backends. @default one `platform` service on port 8080 */
  readonly services?: ReadonlyArray<ProxiedService>;
  /** The load the tier is sized for. @default MISSION_LOAD (800 concurrent, 3 million requests a day) */
  readonly load?: ProxyLoad;
  /** Public failover addresses the proxy pair holds (the proxy failover IP where there is no own prefix). @default [] */
  readonly publicAddresses?: ReadonlyArray<PublicAddressRequest>;
}

export class ProxyTier extends pulumi.ComponentResource {
  /** The proxy hosts by host name. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** Their failure domains. */
  public readonly placements: Readonly<Record<string, Placement>>;
  public readonly pair: FailoverPair;
  /** Binds, services with their backend servers and health checks, sizing, stats: for the HAProxy renderer. */
  public readonly plan: ProxyPlan;

  constructor(name: string, args: ProxyTierArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:proxy:ProxyTier", name, {}, opts);
    const { model } = args.context;
    const pairModel = model.pairs.find((p) => p.role === "proxy");
    if (!pairModel) throw new Error(`${model.name} has no proxy pair`);
    const role = createRoleHosts(name, "proxy", args.context, this);
    this.hosts = role.hosts;
    this.placements = role.placements;
    this.pair = new FailoverPair(
      `${name}-pair`,
      { pair: pairModel, model, members: this.hosts, provisioning: args.context.provisioning, publicAddresses: args.publicAddresses ?? [] },
      { parent: this },
    );
    this.plan = proxyPlan(
      model.hosts.filter((h) => h.role === "proxy"),
      args.backends,
      args.services,
      args.load ?? MISSION_LOAD,
    );
    this.registerOutputs({ hosts: this.hosts, placements: this.placements, pair: this.pair, plan: this.plan });
  }
}
