import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import { SegmentPlan, SiteModel } from "../../lib/model/model";
import { Provisioning } from "../provisioning";

export interface NetworkSegmentsArgs {
  /** The site model; its `segments` are created in the order the model lists them. */
  readonly model: SiteModel;
  /** How the provider carries segments (provider network and subnets, or VLANs on hosts). */
  readonly provisioning: Provisioning;
}

/**
 * The site's network segments (DMZ, application, data, management, one
 * heartbeat per pair, and the site's extras). Routing between segments goes
 * only through the firewall pair, whose VIP is every segment's gateway.
 */
export class NetworkSegments extends pulumi.ComponentResource {
  /** The segments as planned: CIDR, gateway, members. */
  public readonly segments: Readonly<Record<string, SegmentPlan>>;
  /** The provider network, where the provider has one. */
  public readonly network?: hcloud.Network;
  /** Provider subnets by segment name (empty on pre-provisioned sites). */
  public readonly subnets: Readonly<Record<string, hcloud.NetworkSubnet>>;

  constructor(name: string, args: NetworkSegmentsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:network:NetworkSegments", name, {}, opts);
    this.segments = Object.fromEntries(args.model.segments.map((s) => [s.name, s]));
    const carrier = args.provisioning.createSegments(name, args.model, this);
    this.network = carrier.network;
    this.subnets = carrier.subnets;
    this.registerOutputs({ segments: this.segments, network: this.network, subnets: this.subnets });
  }
}
