import * as pulumi from "@pulumi/pulumi";
import { SegmentPlan, SiteModel } from "../../lib/model/model";
import { Provisioning, SegmentCarrier } from "../provisioning";

export interface NetworkSegmentsArgs {
  /** The site model; its `segments` are created in the order the model lists them. */
  readonly model: SiteModel;
  /** How the provider carries segments (provider network and subnets, or VLANs on hosts). */
  readonly provisioning: Provisioning;
}

/**
 * The site's network segments (DMZ, application, data, management, one
 * heartbeat per pair, and the site's extras). Traffic between segments and
 * out of the site goes only through the firewall pair: its VIP is every
 * segment's gateway on VLANs, and on a provider network a route sends
 * everything leaving the network to it.
 */
export class NetworkSegments extends pulumi.ComponentResource {
  /** The segments as planned: CIDR, gateway, members. */
  public readonly segments: Readonly<Record<string, SegmentPlan>>;
  /** The provider network, where the provider has one. */
  public readonly network?: pulumi.CustomResource;
  /** Provider subnets by segment name (empty on pre-provisioned sites). */
  public readonly subnets: Readonly<Record<string, pulumi.CustomResource>>;
  /** Provider routes through the firewall by key (`default`); empty where the hosts route themselves. */
  public readonly routes: Readonly<Record<string, pulumi.CustomResource>>;
  /** How the provider carries the segments, in plain sentences. */
  public readonly notes: ReadonlyArray<string>;
  /** The provider side as the host components need it. */
  public readonly carrier: SegmentCarrier;

  constructor(name: string, args: NetworkSegmentsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:network:NetworkSegments", name, {}, opts);
    this.segments = Object.fromEntries(args.model.segments.map((s) => [s.name, s]));
    this.carrier = args.provisioning.createSegments(name, args.model, this);
    this.network = this.carrier.network;
    this.subnets = this.carrier.subnets;
    this.routes = this.carrier.routes;
    this.notes = this.carrier.notes;
    this.registerOutputs({
      segments: this.segments,
      network: this.network,
      subnets: this.subnets,
      routes: this.routes,
      notes: this.notes,
      carrier: this.carrier,
    });
  }
}
