/**
 * The Pulumi half of every handed-over provider: nothing is created at the
 * provider; the hosts listed in the site file are taken as they are.
 */
import * as pulumi from "@pulumi/pulumi";
import type { HostModel, PairModel, SiteModel } from "../model/model";
import type { Role } from "../model/primitives";
import { type FencingPlan, commandFencing } from "./fencing";
import type { ProviderAdapter } from "./adapter";
import type {
  Access,
  CloudFirewall,
  FailoverAddress,
  Machine,
  MachineRequest,
  Placement,
  Provisioning,
  SegmentCarrier,
  StoreDisk,
} from "./provisioning";

/**
 * Pre-provisioned hosts (Netcup, IONOS, Hetzner dedicated, …): segments are
 * VLANs on the hosts' internal links, configured on the hosts themselves;
 * nothing is created at the provider. The hosts listed in the site file are
 * taken as they are.
 */
export class HandedOverProvisioning implements Provisioning {
  readonly label: string;
  readonly ownPrefix: { readonly routable: boolean; readonly how: string };
  private readonly providerName: string;
  constructor(
    private readonly adapter: ProviderAdapter,
    private readonly fenceCommand: string | undefined,
  ) {
    this.providerName = adapter.id;
    this.label = `pre-provisioned hosts (${adapter.id})`;
    this.ownPrefix = adapter.ownPrefix;
  }

  readonly vipTakeover = "VRRP moves the VIPs on the segment VLANs (gratuitous ARP)";

  createSegments(name: string): SegmentCarrier {
    return {
      subnets: {},
      routes: {},
      notes: [
        `${name}: ${this.adapter.segments.kind === "vlans" ? this.adapter.segments.note : "segments are VLANs"}; every segment's gateway is the firewall pair's VIP, so traffic between segments passes the firewall`,
      ],
    };
  }

  createAccess(): Access {
    return {};
  }

  createPlacement(_name: string, _model: SiteModel, physical: string): Placement {
    return { name: physical };
  }

  createMachine(_name: string, request: MachineRequest): Machine {
    const address = request.host.publicAddress;
    if (address === undefined) throw new Error(`${request.host.name}: a pre-provisioned host needs its address in the site file`);
    return { origin: "pre-provisioned", publicAddress: pulumi.output(address) };
  }

  createFailoverAddress(_name: string, _model: SiteModel, purpose: string): FailoverAddress {
    return {
      purpose,
      address: pulumi.output<string | undefined>(undefined),
      how: `ordered from ${this.providerName} (not created through an API); the member that becomes active re-routes it through the provider's API`,
    };
  }

  // The hosts share a layer-2 segment here: they hold the address themselves (kube-vip announces it by ARP).
  createInternalAddress(): undefined {
    return undefined;
  }

  createStoreDisk(_name: string, _model: SiteModel, host: HostModel, _machine: Machine, sizeGb: number): StoreDisk {
    return { sizeGb, device: pulumi.output(`local disks of ${host.physical}`) };
  }

  createCloudFirewalls(): Partial<Record<Role, CloudFirewall>> {
    return {};
  }

  fencing(_model: SiteModel, pair: PairModel): pulumi.Output<FencingPlan> {
    return pulumi.output(commandFencing(pair, this.fenceCommand));
  }
}
