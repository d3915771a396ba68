/**
 * The reusable active/passive primitive of the firewall, proxy and storage
 * pairs: heartbeat on the pair's own segment, identical time on both members,
 * failover addresses, fencing of the failed member before takeover, the
 * active member as a setting (a takeover is a reviewed change of priorities
 * only) and a dissolve setting that leaves one member serving.
 */
import * as pulumi from "@pulumi/pulumi";
// @pulumi/tls generates the fence keys inside the stack: Ed25519 in OpenSSH's formats, kept as secrets in state,
// with no key material ever typed into config or passing through a shell.
import * as tls from "@pulumi/tls";
import { PairModel, SiteModel, Vip } from "../../lib/model/model";
import { PairedRole } from "../../lib/model/schema";
import type { FenceKeys } from "../../lib/render/types";
import { FailoverAddress, Provisioning } from "../provisioning";
import { Host } from "../host";
import { FencingPlan } from "./fencing";
import { VrrpPlan, servingMembers, takeoverSteps, vrrpPlan } from "./plan";

/** A public failover address the pair holds. */
export interface PublicAddressRequest {
  /** Stable key (`proxy`, `nat`, `prefix-next-hop`). */
  readonly purpose: string;
  /** The address when the site plans it (own prefix, site file); absent: the provider supplies one. */
  readonly address?: string;
  /** Where the address comes from, for the plan. */
  readonly source: string;
}

export interface FailoverPairArgs {
  /** The pair as the site model plans it (members, active, priorities, VIPs, heartbeat). */
  readonly pair: PairModel;
  /** The site model (time sources, provider). */
  readonly model: SiteModel;
  /** The two member hosts by host name. */
  readonly members: Readonly<Record<string, Host>>;
  /** How the provider moves addresses and fences members. */
  readonly provisioning: Provisioning;
  /** Public failover addresses the pair holds. @default [] */
  readonly publicAddresses?: ReadonlyArray<PublicAddressRequest>;
}

/** A failover address as the pair exposes it. */
export interface PairAddress {
  readonly purpose: string;
  readonly address: pulumi.Output<string | undefined>;
  readonly source: string;
  readonly how: string;
  /** The provider's side (floating IP and its assignment), where there is one. */
  readonly provider?: FailoverAddress;
}

export class FailoverPair extends pulumi.ComponentResource {
  public readonly pairName: string;
  public readonly role: PairedRole;
  public readonly members: readonly [string, string];
  public readonly active: string;
  public readonly passive: string;
  public readonly dissolved: boolean;
  /** Members that serve: both, or only the active one when dissolved. */
  public readonly serving: ReadonlyArray<string>;
  /** The member a dissolved pair released; undefined otherwise. */
  public readonly released?: string;
  /** Heartbeat segment and each member's address in it. */
  public readonly heartbeat: { readonly segment: string; readonly addresses: Readonly<Record<string, string>> };
  /** VRRP settings (router id, priorities, unicast peers, timers). */
  public readonly vrrp: VrrpPlan;
  /**
   * Each member's fence keys (its fence sshd's host key, its client key), by
   * member; a Pulumi secret, delivered to this pair's members only.
   */
  public readonly fenceKeys: pulumi.Output<Record<string, FenceKeys>>;
  /** Internal VIPs (segment gateways, service addresses). */
  public readonly vips: ReadonlyArray<Vip>;
  /** Public failover addresses by purpose. */
  public readonly failoverAddresses: Readonly<Record<string, PairAddress>>;
  /** NTP sources per member: the same list on both, so their clocks agree. */
  public readonly timeSources: Readonly<Record<string, ReadonlyArray<string>>>;
  /** How the failed member is fenced before the other takes over. */
  public readonly fencing: pulumi.Output<FencingPlan>;
  /** The takeover, step by step. */
  public readonly takeover: pulumi.Output<string[]>;

  constructor(name: string, args: FailoverPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:pair:FailoverPair", name, {}, opts);
    const { pair, model, provisioning } = args;
    for (const member of pair.members) {
      if (!args.members[member]) throw new Error(`${pair.name}: member ${member} has no host`);
    }
    this.pairName = pair.name;
    this.role = pair.role;
    this.members = pair.members;
    this.active = pair.active;
    this.passive = pair.passive;
    this.dissolved = pair.dissolved;
    this.serving = servingMembers(pair);
    this.released = pair.dissolved ? pair.passive : undefined;
    this.heartbeat = { segment: pair.heartbeatSegment, addresses: pair.heartbeat };
    this.vrrp = vrrpPlan(pair, model);
    this.vips = pair.vips;
    this.timeSources = Object.fromEntries(pair.members.map((m) => [m, [...model.time.servers]]));

    // A dissolved pair has no peer to fence or be fenced by.
    const fenced = pair.dissolved ? [] : [...pair.members];
    const key = (member: string, purpose: string) =>
      new tls.PrivateKey(`${name}-fence-${purpose}-${member}`, { algorithm: "ED25519" }, { parent: this });
    const keys = fenced.map((member) => {
      const host = key(member, "host");
      const client = key(member, "client");
      return pulumi
        .all([host.privateKeyOpenssh, host.publicKeyOpenssh, client.privateKeyOpenssh, client.publicKeyOpenssh])
        .apply(
          ([hostKey, hostKeyPublic, clientKey, clientKeyPublic]) =>
            [member, { hostKey, hostKeyPublic, clientKey, clientKeyPublic }] as const,
        );
    });
    // Secret by construction, not only by the provider's marking of the private keys.
    this.fenceKeys = pulumi.secret(pulumi.all(keys).apply((entries) => Object.fromEntries(entries)));

    const activeHost = args.members[pair.active];
    const addresses: Record<string, PairAddress> = {};
    for (const request of args.publicAddresses ?? []) {
      if (request.address !== undefined) {
        addresses[request.purpose] = {
          purpose: request.purpose,
          address: pulumi.output<string | undefined>(request.address),
          source: request.source,
          how: `routed to the site and held by the active ${pair.role} member as a VRRP address`,
        };
      } else {
        const provider = provisioning.createFailoverAddress(`${name}-${request.purpose}`, model, request.purpose, activeHost, this);
        addresses[request.purpose] = {
          purpose: request.purpose,
          address: provider.address,
          source: request.source,
          how: provider.how,
          provider,
        };
      }
    }
    this.failoverAddresses = addresses;
    this.fencing = provisioning.fencing(model, pair, args.members);
    const moves = Object.values(addresses).map((a) => ({ purpose: a.purpose, how: a.how }));
    this.takeover = this.fencing.apply((f) => takeoverSteps(pair, f.description, moves, provisioning.vipTakeover));

    this.registerOutputs({
      pairName: this.pairName,
      role: this.role,
      members: this.members,
      active: this.active,
      passive: this.passive,
      dissolved: this.dissolved,
      serving: this.serving,
      released: this.released,
      heartbeat: this.heartbeat,
      vrrp: this.vrrp,
      fenceKeys: this.fenceKeys,
      vips: this.vips,
      failoverAddresses: this.failoverAddresses,
      timeSources: this.timeSources,
      fencing: this.fencing,
      takeover: this.takeover,
    });
  }
}
