/**
 * The operator's own public /23 at a site, split into its blocks (failover,
 * NAT, reserve, services); announced by BGP from the active firewall, or
 * routed by the provider to a static next hop; or, on a provider that cannot
 * route an own prefix, replaced by provider failover IPs — said plainly in
 * `note`, which the plan prints.
 */
import * as pulumi from "@pulumi/pulumi";
import { PublicBlocks, SiteModel } from "../../lib/model/model";
import { FailoverPair } from "../failover-pair";
import { BgpAnnouncement, PrefixMode, prefixPlan } from "./plan";

export interface RoutedPrefixArgs {
  /** The site model (its public plan). */
  readonly model: SiteModel;
  /** Whether and how the provider routes an own prefix (from the provisioning). */
  readonly ownPrefix: { readonly routable: boolean; readonly how: string };
  /** The firewall pair: it holds the prefix's next hop, announces it, and holds the NAT address. */
  readonly firewall: FailoverPair;
  /** The proxy pair: it holds the proxy failover IP where there is no own prefix. */
  readonly proxy: FailoverPair;
}

/** A public address as stack outputs show it; `null` where the provider assigns it outside the library. */
export interface PublicAddressOutput {
  readonly address: string | null;
  readonly heldBy: string;
  readonly source: string;
  readonly block?: keyof PublicBlocks;
}

export class RoutedPrefix extends pulumi.ComponentResource {
  public readonly mode: PrefixMode;
  /** How the public addresses reach the site, in one sentence. */
  public readonly note: string;
  /** The own prefix, where the site routes one. */
  public readonly prefix?: string;
  /** The own prefix's blocks. */
  public readonly blocks?: PublicBlocks;
  /** The BGP announcement, where the prefix is announced by BGP. */
  public readonly bgp?: BgpAnnouncement;
  /** The static next hop, where the provider routes the prefix statically. */
  public readonly nextHop?: string;
  /** Public failover addresses by purpose. */
  public readonly addresses: pulumi.Output<Record<string, PublicAddressOutput>>;

  constructor(name: string, args: RoutedPrefixArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:prefix:RoutedPrefix", name, {}, opts);
    const firewallPair = args.model.pairs.find((p) => p.role === "firewall");
    if (!firewallPair) throw new Error(`${args.model.name} has no firewall pair`);
    const plan = prefixPlan(args.model, args.ownPrefix, firewallPair);
    this.mode = plan.mode;
    this.note = plan.note;
    this.prefix = plan.prefix;
    this.blocks = plan.blocks;
    this.bgp = plan.bgp;
    this.nextHop = plan.nextHop;
    const pairs = { firewall: args.firewall, proxy: args.proxy } as const;
    const entries = plan.addresses.map((a) => {
      const held = pairs[a.holder as "firewall" | "proxy"]?.failoverAddresses[a.purpose];
      if (!held) throw new Error(`${name}: the ${a.holder} pair does not hold failover address ${a.purpose}`);
      return held.address.apply((address): [string, PublicAddressOutput] => [
        a.purpose,
        { address: address ?? null, heldBy: `${a.holder} pair`, source: a.source, ...(a.block ? { block: a.block } : {}) },
      ]);
    });
    this.addresses = pulumi.all(entries).apply((e) => Object.fromEntries(e));
    // Said plainly in `pulumi preview`; the returned promise only reports delivery of the message.
    void pulumi.log.info(plan.note, this);
    this.registerOutputs({
      mode: this.mode,
      note: this.note,
      prefix: this.prefix,
      blocks: this.blocks,
      bgp: this.bgp,
      nextHop: this.nextHop,
      addresses: this.addresses,
    });
  }
}
