/**
 * The one place that knows how hosts and networks come to be at a provider.
 * Every provider difference lives behind `Provisioning`; the rest of the
 * components ask it and never branch on the provider themselves.
 */
import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import { SiteModel } from "../../lib/model/model";

/** Hetzner Cloud network zone of each location. */
export const HCLOUD_NETWORK_ZONE: Record<string, string> = {
  fsn1: "eu-central",
  nbg1: "eu-central",
  hel1: "eu-central",
  ash: "us-east",
  hil: "us-west",
  sin: "ap-southeast",
};

/** What the provider created to carry the site's segments. */
export interface SegmentCarrier {
  /** The provider network, where the provider has one. */
  readonly network?: hcloud.Network;
  /** One provider subnet per segment name, where the provider has subnets. */
  readonly subnets: Readonly<Record<string, hcloud.NetworkSubnet>>;
}

export interface Provisioning {
  /** Provider label shown in the plan. */
  readonly label: string;
  /** Creates the provider side of the site's segments. */
  createSegments(name: string, model: SiteModel, parent: pulumi.Resource): SegmentCarrier;
}

/** Hetzner Cloud: one private network per site, one cloud subnet per segment. */
export class HcloudProvisioning implements Provisioning {
  readonly label: string;
  constructor(private readonly location: string) {
    this.label = `Hetzner Cloud ${location}`;
  }

  createSegments(name: string, model: SiteModel, parent: pulumi.Resource): SegmentCarrier {
    const network = new hcloud.Network(
      name,
      { name, ipRange: model.supernet, labels: { site: model.name, "managed-by": "standort" } },
      { parent },
    );
    const subnets: Record<string, hcloud.NetworkSubnet> = {};
    for (const segment of model.segments) {
      subnets[segment.name] = new hcloud.NetworkSubnet(
        `${name}-${segment.name}`,
        {
          // hcloud hands ids out as strings where this input wants a number.
          networkId: network.id.apply(Number),
          type: "cloud",
          networkZone: HCLOUD_NETWORK_ZONE[this.location],
          ipRange: segment.cidr,
        },
        { parent },
      );
    }
    return { network, subnets };
  }
}

/**
 * Pre-provisioned hosts (Netcup, IONOS, …): segments are VLANs on the hosts'
 * internal links, configured on the hosts themselves; nothing is created at the
 * provider.
 */
export class PreprovisionedProvisioning implements Provisioning {
  readonly label: string;
  constructor(providerName: string) {
    this.label = `pre-provisioned hosts (${providerName})`;
  }

  createSegments(): SegmentCarrier {
    return { subnets: {} };
  }
}

/** Chooses the provisioning for a site: the only switch on the provider kind. */
export function provisioningFor(model: SiteModel): Provisioning {
  switch (model.provider.kind) {
    case "hcloud":
      return new HcloudProvisioning(model.provider.location);
    case "preprovisioned":
      return new PreprovisionedProvisioning(model.provider.name);
  }
}
