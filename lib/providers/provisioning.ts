/**
 * The Pulumi half of the provider seam: what a provider creates or adopts
 * for a site (segments, hosts, failover addresses, disks, cloud firewalls,
 * internal service addresses) and how a failed pair member is fenced. Every
 * provider difference in the components lives behind `Provisioning`; the
 * components ask it and never branch on the provider. Each adapter's folder
 * holds its implementation; `provisioners.ts` picks it. Free of provider SDK
 * types: what an adapter creates is exposed as plain Pulumi resources.
 */
import * as pulumi from "@pulumi/pulumi";
import type { HostModel, PairModel, SiteModel } from "../model/model";
import type { Role } from "../model/primitives";
import type { CloudFirewallRule } from "../../components/firewall/cloud-rules";
import type { FencingPlan } from "./fencing";

/** What the provider created to carry the site's segments. */
export interface SegmentCarrier {
  /** The provider network, where the provider has one. */
  readonly network?: pulumi.CustomResource;
  /** One provider subnet per segment name, where the provider has subnets. */
  readonly subnets: Readonly<Record<string, pulumi.CustomResource>>;
  /** Provider routes by destination key (`default`), where the provider routes between subnets itself. */
  readonly routes: Readonly<Record<string, pulumi.CustomResource>>;
  /** Plain statements about how the provider carries the segments, printed with the plan. */
  readonly notes: ReadonlyArray<string>;
}

/** An internal TCP service address for a group of hosts (`createInternalAddress`). */
export interface InternalAddressRequest {
  /** Stable key of the service (`kubernetes-api`): names the provider's resources. */
  readonly key: string;
  readonly segment: string;
  readonly address: string;
  readonly port: number;
  readonly segments: SegmentCarrier;
  readonly targets: ReadonlyArray<{ readonly host: string; readonly machine: Machine }>;
}

/** What holds an internal service address. */
export interface InternalAddress {
  /** Plain statement for the plan: who holds the address and how it follows the hosts. */
  readonly note: string;
  readonly loadBalancer?: pulumi.CustomResource;
}

/** Site-wide access material the provider installs on the hosts it creates. */
export interface Access {
  /** The operator's SSH key at the provider, where hosts are created through an API. */
  readonly sshKey?: pulumi.CustomResource;
}

/** Everything a provider needs to bring one host into being. */
export interface MachineRequest {
  readonly site: SiteModel;
  readonly host: HostModel;
  readonly segments: SegmentCarrier;
  readonly access: Access;
  /** Where the host's `physical` placement lives (hcloud: the spread placement group). */
  readonly placement?: Placement;
  /** Cloud-init user data, used once at creation. */
  readonly userData: pulumi.Input<string>;
  /** Resources the machine is created after (the cloud firewalls, so no server is ever up unfiltered). */
  readonly after?: ReadonlyArray<pulumi.Resource>;
}

/** What the provider made (or adopted) for one host. */
export interface Machine {
  /** How the host came to be. */
  readonly origin: "api" | "pre-provisioned";
  /** The address the library reaches the host on. */
  readonly publicAddress: pulumi.Output<string>;
  /** The provider's id of the machine, where the provider has an API. */
  readonly providerId?: pulumi.Output<string>;
  readonly server?: pulumi.CustomResource;
  /** The attachment to the site's private network (hcloud). */
  readonly serverNetwork?: pulumi.CustomResource;
}

/** A physical failure domain: a spread placement group (hcloud) or a named machine (pre-provisioned). */
export interface Placement {
  readonly name: string;
  readonly group?: pulumi.CustomResource;
}

/** One failover address and how it moves between the members of a pair. */
export interface FailoverAddress {
  readonly purpose: string;
  /** The address; `undefined` where the provider assigns it outside the library (ordered, not created). */
  readonly address: pulumi.Output<string | undefined>;
  /** Where the address comes from and how it follows the active member. */
  readonly how: string;
  readonly floatingIp?: pulumi.CustomResource;
  readonly assignment?: pulumi.CustomResource;
}

/** One independent store's disk. */
export interface StoreDisk {
  readonly sizeGb: number;
  /** The block device (or disks) the store's pool is built on. */
  readonly device: pulumi.Output<string>;
  readonly volume?: pulumi.CustomResource;
  readonly attachment?: pulumi.CustomResource;
}

/** A provider-side firewall in front of the hosts' public interfaces. */
export interface CloudFirewall {
  readonly role: Role;
  readonly firewall: pulumi.CustomResource;
}

export interface Provisioning {
  /** Provider label shown in the plan. */
  readonly label: string;
  /**
   * Whether the provider can route an operator-owned prefix to the site, and
   * how; when it cannot, the site uses provider-assigned failover IPs.
   */
  readonly ownPrefix: { readonly routable: boolean; readonly how: string };
  /** How a pair's internal VIPs follow the member that becomes active. */
  readonly vipTakeover: string;
  /** Creates the provider side of the site's segments (and their routes through the firewall). */
  createSegments(name: string, model: SiteModel, parent: pulumi.Resource): SegmentCarrier;
  /** Installs the operator's access material where the provider creates hosts. */
  createAccess(name: string, model: SiteModel, sshPublicKey: pulumi.Input<string> | undefined, parent: pulumi.Resource): Access;
  /** Creates (or names) the failure domain `physical`, parented to the role's component. */
  createPlacement(name: string, model: SiteModel, physical: string, role: Role, parent: pulumi.Resource): Placement;
  /** Creates (hcloud) or adopts (pre-provisioned) one host; `parent` is the host's component. */
  createMachine(name: string, request: MachineRequest, parent: pulumi.Resource): Machine;
  /**
   * A provider failover address for `purpose`, initially on `holder`; on takeover
   * the new active member moves it (the pair's takeover steps say how).
   */
  createFailoverAddress(name: string, model: SiteModel, purpose: string, holder: Machine, parent: pulumi.Resource): FailoverAddress;
  /** One store's disk on `machine`. */
  createStoreDisk(name: string, model: SiteModel, host: HostModel, machine: Machine, sizeGb: number, parent: pulumi.Resource): StoreDisk;
  /**
   * An internal service address in front of `targets` (the Kubernetes API of the control plane), where the
   * provider's network does not let hosts move an address themselves (gratuitous ARP): the provider's load
   * balancer holds `address` in the segment's subnet. Undefined where the hosts hold it (kube-vip, ARP).
   */
  createInternalAddress(
    name: string,
    model: SiteModel,
    request: InternalAddressRequest,
    parent: pulumi.Resource,
  ): InternalAddress | undefined;
  /** Provider firewalls in front of the public interfaces, one per role; none where the provider has none. */
  createCloudFirewalls(
    name: string,
    model: SiteModel,
    rulesByRole: Readonly<Record<Role, ReadonlyArray<CloudFirewallRule>>>,
    parent: pulumi.Resource,
  ): Partial<Record<Role, CloudFirewall>>;
  /** How a failed member of `pair` is fenced before the other takes over. */
  fencing(model: SiteModel, pair: PairModel, machines: Readonly<Record<string, Machine>>): pulumi.Output<FencingPlan>;
}

/** Labels every provider object of a site carries; hcloud firewalls select servers by them. */
export function siteLabels(model: SiteModel, role?: Role): Record<string, string> {
  return { site: model.name, "managed-by": "standort", ...(role ? { role } : {}) };
}

/** The label selector that picks a role's servers of a site. */
export function roleSelector(model: SiteModel, role: Role): string {
  return `site=${model.name},role=${role}`;
}

/** What a stack needs from its provider before anything is created: Pulumi providers and the failover scripts' API secret. */
export interface StackSetup {
  readonly providers: Readonly<Record<string, pulumi.ProviderResource>>;
  /** The secret the failover scripts call the provider's API with, where the provider's own credential serves. */
  readonly providerApiToken?: pulumi.Output<string>;
}

/** Refuses a missing stack key: `missing(key, why, secret?)` builds the error that names it. */
export type MissingConfig = (key: string, why: string, secret?: boolean) => Error;
