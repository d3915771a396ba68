/**
 * One host of a site, whatever the provider: created through the provider's
 * API (Hetzner Cloud) or taken as handed over (pre-provisioned). Either way it
 * carries its address, role, physical machine and segment interfaces, and the
 * library configures it from the operating system up.
 */
import * as pulumi from "@pulumi/pulumi";
import { HostInterface, HostModel, SiteModel } from "../../lib/model/model";
import { Role } from "../../lib/model/schema";
import { Access, Placement, Provisioning, SegmentCarrier } from "../provisioning";
import { Bootstrap, bootstrapFor, defaultUserData } from "./bootstrap";

/** What every role component needs to bring its hosts into being. */
export interface HostContext {
  /** The site model. */
  readonly model: SiteModel;
  /** How hosts come to be at this site's provider. */
  readonly provisioning: Provisioning;
  /** The provider side of the segments (network and subnets on Hetzner Cloud). */
  readonly segments: SegmentCarrier;
  /** Operator access material installed on API-created hosts. */
  readonly access: Access;
  /**
   * First-boot cloud-init user data by host name (API-created hosts only).
   * @default a minimal `#cloud-config` from the host's bootstrap (`defaultUserData`)
   */
  readonly userData?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Resources every machine is created after: the provider firewalls, so that
   * a new server starts filtered. @default []
   */
  readonly after?: ReadonlyArray<pulumi.Resource>;
}

export interface HostArgs {
  /** The host as the site model plans it. */
  readonly host: HostModel;
  /** The site's provisioning context. */
  readonly context: HostContext;
  /** The failure domain the host sits in (spread placement group or named machine). */
  readonly placement: Placement;
}

export class Host extends pulumi.ComponentResource {
  /** The host's name (`<code>-<role>-<n>`), also its server name. */
  public readonly hostName: string;
  public readonly role: Role;
  /** The physical machine or spread placement group the host sits in. */
  public readonly physical: string;
  /** The host's address in each segment it joins. */
  public readonly interfaces: ReadonlyArray<HostInterface>;
  /** `api`: created through the provider's API; `pre-provisioned`: taken as handed over. */
  public readonly origin: "api" | "pre-provisioned";
  /** The address the library reaches the host on. */
  public readonly publicAddress: pulumi.Output<string>;
  /** Packages, services and time sources of the host's first configuration. */
  public readonly bootstrap: Bootstrap;
  /** The Hetzner Cloud server, for API-created hosts. */
  public readonly server?: pulumi.CustomResource;
  /** The server's attachment to the site network, for API-created hosts. */
  public readonly serverNetwork?: pulumi.CustomResource;
  /** The provider's id of the machine, where the provider has an API. */
  public readonly providerId?: pulumi.Output<string>;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:host:Host", name, {}, opts);
    const { host, context } = args;
    this.hostName = host.name;
    this.role = host.role;
    this.physical = host.physical;
    this.interfaces = host.interfaces;
    this.bootstrap = bootstrapFor(host.role, context.model);
    const machine = context.provisioning.createMachine(
      name,
      {
        site: context.model,
        host,
        segments: context.segments,
        access: context.access,
        placement: args.placement,
        userData: context.userData?.[host.name] ?? defaultUserData(host, this.bootstrap),
        after: context.after,
      },
      this,
    );
    this.origin = machine.origin;
    this.publicAddress = machine.publicAddress;
    this.server = machine.server;
    this.serverNetwork = machine.serverNetwork;
    this.providerId = machine.providerId;
    this.registerOutputs({
      hostName: this.hostName,
      role: this.role,
      physical: this.physical,
      interfaces: this.interfaces,
      origin: this.origin,
      publicAddress: this.publicAddress,
      bootstrap: this.bootstrap,
      server: this.server,
      serverNetwork: this.serverNetwork,
      providerId: this.providerId,
    });
  }
}

/** The hosts of one role, with the failure domains they sit in. */
export interface RoleHosts {
  /** Hosts by host name. */
  readonly hosts: Readonly<Record<string, Host>>;
  /** Failure domains by `physical` name. */
  readonly placements: Readonly<Record<string, Placement>>;
}

/**
 * Creates the hosts of `role` under `parent`: one failure domain per distinct
 * `physical`, one `Host` per planned host named `<name>-<ordinal>` (stable:
 * the ordinal is part of the host name, never a list position).
 */
export function createRoleHosts(name: string, role: Role, context: HostContext, parent: pulumi.Resource): RoleHosts {
  const planned = context.model.hosts.filter((h) => h.role === role).sort((a, b) => a.ordinal - b.ordinal);
  const placements: Record<string, Placement> = {};
  for (const physical of [...new Set(planned.map((h) => h.physical))].sort()) {
    placements[physical] = context.provisioning.createPlacement(name, context.model, physical, role, parent);
  }
  const hosts: Record<string, Host> = {};
  for (const host of planned) {
    hosts[host.name] = new Host(`${name}-${host.ordinal}`, { host, context, placement: placements[host.physical] }, { parent });
  }
  return { hosts, placements };
}

/** What a stack output says about a host: plain data, addresses resolved at deploy. */
export function describeHost(
  host: Host,
): pulumi.Output<{ name: string; role: Role; physical: string; origin: string; publicAddress: string; interfaces: HostInterface[] }> {
  return host.publicAddress.apply((publicAddress) => ({
    name: host.hostName,
    role: host.role,
    physical: host.physical,
    origin: host.origin,
    publicAddress,
    interfaces: [...host.interfaces],
  }));
}
