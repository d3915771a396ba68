/**
 * The edge firewall: an active/passive pair between the internet, the site's
 * segments and the partner site, enforcing one zone policy (default deny,
 * management only from the allowlist). The policy is rendered where it
 * applies: always into the hosts' own packet filter (lib/render), and into
 * the provider's cloud firewall where the provider has one.
 */
import * as pulumi from "@pulumi/pulumi";
import { SiteModel } from "../../lib/model/model";
import { Role } from "../../lib/model/schema";
import { ZoneRule, zonePolicy } from "../../lib/render/policy";
import { ProxiedService, TunnelPeer } from "../../lib/render/types";
import { FailoverPair, PublicAddressRequest } from "../failover-pair";
import { Host, HostContext, createRoleHosts } from "../host";
import { CloudFirewall, Placement } from "../provisioning";
import { CloudFirewallRule, cloudFirewallRulesByRole } from "./cloud-rules";

export interface FirewallArgs {
  /** The site's provisioning context. */
  readonly context: HostContext;
  /** Every site model, for the partner rules of the zone policy. @default [] (no partner rules) */
  readonly sites?: ReadonlyArray<SiteModel>;
  /** Services the proxies reach on the virtualization hosts (their ports enter the policy). @default one `platform` service on port 8080 */
  readonly services?: ReadonlyArray<ProxiedService>;
  /** The tunnels the pair terminates: their peers count as partners, and their UDP ports open. @default none */
  readonly tunnelPeers?: ReadonlyArray<TunnelPeer>;
  /** Public failover addresses the firewall pair holds (NAT, the own prefix's addresses, its next hop). @default [] */
  readonly publicAddresses?: ReadonlyArray<PublicAddressRequest>;
}

export class Firewall extends pulumi.ComponentResource {
  /** The two firewall hosts by host name. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** Their failure domains. */
  public readonly placements: Readonly<Record<string, Placement>>;
  public readonly pair: FailoverPair;
  /** The zone policy: allow rules in order; everything else is dropped. */
  public readonly policy: ReadonlyArray<ZoneRule>;
  /** What is not allowed: dropped. */
  public readonly defaultAction: "drop";
  /** The only prefixes management (SSH, stats) is reachable from. */
  public readonly managementAllowlist: ReadonlyArray<string>;
  /** The policy's rules for each role's public interfaces (the provider firewall's view). */
  public readonly cloudRules: Readonly<Record<Role, ReadonlyArray<CloudFirewallRule>>>;
  /** Provider firewalls by role, where the provider has them. */
  public readonly cloudFirewalls: Readonly<Partial<Record<Role, CloudFirewall>>>;

  constructor(name: string, args: FirewallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:firewall:Firewall", name, {}, opts);
    const { model, provisioning } = args.context;
    const pairModel = model.pairs.find((p) => p.role === "firewall");
    if (!pairModel) throw new Error(`${model.name} has no firewall pair`);
    this.policy = zonePolicy(model, args.sites ?? [], args.services, args.tunnelPeers);
    this.defaultAction = "drop";
    this.managementAllowlist = [...model.management.allowlist];
    this.cloudRules = cloudFirewallRulesByRole(this.policy);
    this.cloudFirewalls = provisioning.createCloudFirewalls(name, model, this.cloudRules, this);
    const guarded: HostContext = {
      ...args.context,
      after: [...(args.context.after ?? []), ...Object.values(this.cloudFirewalls).map((c) => c.firewall)],
    };
    const role = createRoleHosts(name, "firewall", guarded, this);
    this.hosts = role.hosts;
    this.placements = role.placements;
    this.pair = new FailoverPair(
      `${name}-pair`,
      { pair: pairModel, model, members: this.hosts, provisioning, publicAddresses: args.publicAddresses ?? [] },
      { parent: this },
    );
    this.registerOutputs({
      hosts: this.hosts,
      placements: this.placements,
      pair: this.pair,
      policy: this.policy,
      defaultAction: this.defaultAction,
      managementAllowlist: this.managementAllowlist,
      cloudRules: this.cloudRules,
      cloudFirewalls: this.cloudFirewalls,
    });
  }
}
