/**
 * The one seam between the library and a provider. Everything that differs
 * between providers — how hosts come to exist, how the site's segments are
 * carried, how a failover address moves and what the failover script calls,
 * the cloud firewall, the provider's limits, what the plan prints — is
 * answered by the site's adapter (`registry.ts` picks it); the rest of the
 * library asks it and never branches on the provider's kind.
 *
 * This interface is pure (no Pulumi, no provider SDK types): the model,
 * the renderers and the twin read it. The Pulumi half of an adapter (what it
 * creates or adopts) implements `Provisioning` (`provisioning.ts`) in the
 * adapter's own folder.
 */
import type { z } from "zod";
import type { Cidr } from "../net/ipv4";
import type { SiteModel } from "../model/model";
import type { SiteFile, PreprovisionedHost } from "../model/schema";
import type { PairedRole, Role } from "../model/primitives";
import type { FailoverMove } from "../render/failover-move";

/** How the hosts of a site come to exist. */
export type HostOrigin =
  /** The library creates them through the provider's API, from the roles' counts; `physical` is a placement group. */
  | { readonly kind: "created"; physical(role: Role, ordinal: number): string }
  /** The provider handed them over running; the site file lists them. */
  | { readonly kind: "handed-over"; hosts(provider: SiteFile["provider"]): ReadonlyArray<PreprovisionedHost> };

/**
 * How the site's segments reach the hosts. There are two network models:
 * - `vlans`: the hosts share layer 2; each segment is an 802.1Q VLAN on the
 *   internal NIC, a VIP moves by VRRP (gratuitous ARP), and every segment's
 *   gateway is the firewall pair's VIP.
 * - `routed`: the provider's router carries a private network (Hetzner Cloud):
 *   nothing is on-link, every address is a /32 the provider delivers to one
 *   server at a time, so VIPs move through the provider's API, and the
 *   provider routes between the segments itself.
 */
export type SegmentNetwork =
  | {
      readonly kind: "vlans";
      /** The VLAN id of a segment (undefined: the model has no such segment). */
      vlanId(model: SiteModel, segment: string): number | undefined;
      /** Ids the provider accepts, inclusive (802.1Q: 1–4094). */
      readonly vlanRange: readonly [number, number];
      /** Link MTU the provider's VLANs carry, where it is below Ethernet's 1500. */
      readonly mtu?: number;
      /**
       * The NIC the VLANs ride on: the hosts' second, `internal` NIC (the
       * default), or the `uplink` NIC that also holds the provider's public
       * address (Hetzner Robot's vSwitch: no second NIC). On the uplink only
       * the VLAN links take `mtu`; the NIC keeps its own MTU and the address
       * and routes the provider's image configured.
       * @default "internal"
       */
      readonly nic?: "internal" | "uplink";
      /** One sentence for the plan: what carries the VLANs. */
      readonly note: string;
    }
  | {
      readonly kind: "routed";
      /** Names the private NIC can have (udev's predictable names by server type). */
      readonly nics: ReadonlyArray<string>;
      readonly mtu: number;
      /** The provider router's address every route goes through. */
      gateway(model: SiteModel): string;
    };

/** What differs in the failover script (`lib/render/keepalived.ts`), as POSIX sh lines. */
export interface FailoverScript {
  /** The provider.env variable that holds the provider API secret. */
  readonly tokenVariable: string;
  /** An obviously fake secret of the right shape for offline plans and the twin (default `plan-only-provider-token`). */
  readonly tokenPlaceholder?: string;
  /** True where the provider's API powers a peer off (the second fence method); then the token is required. */
  readonly apiFence: boolean;
  /**
   * Seconds the provider needs between two moves of the same failover
   * address, where it limits that (Netcup: 300, reported); the pair then fails
   * back only after it (`failbackDelaySeconds`).
   */
  readonly moveIntervalSeconds?: number;
  /** True where moving a failover address is an API call that needs the token. */
  movesNeedToken(model: SiteModel, move: FailoverMove): boolean;
  /** Lines defining helpers the other functions use (the API's base, a `curl` wrapper), or none. */
  preamble(model: SiteModel): string[];
  /**
   * The `fence_second` function (the second fence method, after the mgmt
   * fence): the provider's power-off, the site's fence command, or `return 1`.
   */
  fenceSecond(model: SiteModel, peer: string): string[];
  /**
   * The `move_failover_address` function for a move that is not `none`;
   * `common` holds the generic `hold_address` lines and, for declared
   * addresses, the `FAILOVER_ADDRESS=` line, to be placed before it.
   */
  moveAddress(model: SiteModel, move: Exclude<FailoverMove, { kind: "none" }>, common: FailoverCommon): string[];
  /** The stack's `providerEnv` keys the scripts need for the pairs that move addresses. */
  requiredEnv(model: SiteModel, moving: ReadonlyArray<MovingPair>): string[];
  /** The part of the stack's `providerEnv` one host receives (an IONOS member only its own NIC id); default: all of it. */
  hostEnv?(hostName: string, env: Readonly<Record<string, string>>): Record<string, string>;
  /**
   * Routed networks only: the `move_vips` function (VIPs move through the API,
   * off the fenced peer first) and what it needs.
   */
  moveVips?(model: SiteModel, hostName: string, peer: string | undefined): string[];
}

/** A pair whose takeover moves an address: its role, the members that may hold it, and the move. */
export interface MovingPair {
  readonly role: PairedRole;
  readonly members: ReadonlyArray<string>;
  readonly move: Exclude<FailoverMove, { kind: "none" }>;
}

export interface FailoverCommon {
  /** `hold_address()` and, where declared, `FAILOVER_ADDRESS=…`. */
  readonly uplink: ReadonlyArray<string>;
  readonly addressLine: ReadonlyArray<string>;
  /** The outbound NAT map of the firewall's packet filter, where the script sets the NAT address at run time. */
  readonly natSourceMap: string;
  /**
   * This host's own public address (the provider-assigned primary address on
   * the uplink), where the model knows it: a provider that routes a failover
   * address to a server's main address names it in the move (Hetzner Robot's
   * `active_server_ip`).
   */
  readonly selfAddress?: string;
  /** Quotes a value for sh. */
  shQuote(value: string): string;
}

/** The store's data disk. */
export interface DataDisk {
  /** The block device under DRBD on a store. */
  device(model: SiteModel): string;
  /** A udev rule that gives the disk its stable name, where the provider's name is known only at creation. */
  readonly udevRule?: (model: SiteModel) => string;
  /** First-boot guard lines (sh) before the disk is used, for example exactly one volume attached. */
  readonly guard: ReadonlyArray<string>;
}

/** What the model derives from a site file that provider rules need (passed in: adapters do not import the model). */
export interface SiteContext {
  /** Every segment the site asks for, in address plan order, with the roles that join it. */
  readonly segments: ReadonlyArray<{ readonly name: string; readonly members: ReadonlyArray<Role> }>;
}

/** A host of a new site's standard set, at the placeholder address `npm run new-site` hands it. */
export interface ScaffoldHost {
  readonly name: string;
  readonly role: Role;
  /** The machine it runs on (pair members on different ones). */
  readonly physical: string;
  readonly address: string;
}

/** What `npm run new-site` decided about a new site that the adapter's lines need. */
export interface ScaffoldSite {
  readonly name: string;
  /** The name as a title: `graz` → `Graz`. */
  readonly title: string;
  /** `--region`, where given (`ProviderScaffold.region`). */
  readonly region?: string;
  /** The standard set of hosts at their placeholder addresses (none where new-site hands out no placeholder addresses). */
  readonly hosts: ReadonlyArray<ScaffoldHost>;
  /** The comment that marks a placeholder address the operator replaces. */
  readonly replace: string;
}

/**
 * The provider's part of what `npm run new-site` writes (`lib/model/scaffold.ts`
 * writes the rest: name, code, country, supernet, own prefix, roles,
 * allowlist, partner). Comment lines are given without `# `, block lines
 * unindented: the scaffold places them.
 */
export interface ProviderScaffold {
  /** What the files' comments and new-site's messages call the provider: `Hetzner Cloud`, `Netcup`, `another provider`. */
  readonly label: string;
  /**
   * What `--region` sets: the site file's `provider.<field>`, whether it must
   * be given, and the values the provider accepts (empty: free text, the
   * provider's own label).
   */
  readonly region: { readonly field: string; readonly required: boolean; readonly values: ReadonlyArray<string> };
  /** The site file's `description` up to `;`: `Netcup, Graz`. */
  describeSite(title: string): string;
  /** What the site's failover IPs are called in the `description` where it routes no own prefix: `floating IPs`. */
  readonly failoverIpsName: string;
  /** The site file's header comment, below the schema line. */
  header(site: ScaffoldSite): string[];
  /** The lines of the site file's `provider:` block: its `kind` (and `name`), its location, its hosts where handed over. */
  provider(site: ScaffoldSite): string[];
  /**
   * `public.reason` of a site where the provider cannot route an own prefix
   * (`ownPrefix.routable` false). @default `ownPrefix.how`
   */
  readonly publicReason?: string;
  /** The stack file's comment above `standort:providerEnv`: what the keys `failover.requiredEnv` asks for are, and where their values come from. */
  stackComment(requiredEnv: ReadonlyArray<string>): string[];
  /** The placeholder value of a `providerEnv` key `failover.requiredEnv` asks for. @default `replace-with-<key>` */
  envPlaceholder(key: string): string | undefined;
  /** The stack's secrets beyond the deploy key and the alerting, as `pulumi config set` commands. */
  secrets(context: { readonly movesFailoverIps: boolean }): string[];
  /** The site file's `roles.storage` value where the provider needs more than the size (a data disk). @default `{ capacityGb: 2000 }` */
  readonly storage?: string;
}

export interface ProviderAdapter {
  /** Registry key (`hcloud`, `netcup`, `ionos`, `other`, `hetzner-robot`). */
  readonly id: string;
  /** The company behind it: the footprint's sites must span at least two (one provider's outage hits at most half). */
  readonly operator: string;
  /** The provider part of the site file schema (a strict object with the literal `kind`), where this adapter owns one. */
  readonly schema?: z.ZodType;
  /** One line for the plan: the provider and where. */
  describe(provider: SiteFile["provider"]): string;
  readonly hosts: HostOrigin;
  /** Whether hosts get cloud-init user data at creation (only where the library creates them). */
  readonly userData: boolean;
  /** Whether the provider can route an operator-owned prefix to the site, and how. */
  readonly ownPrefix: { readonly routable: boolean; readonly how: string };
  /**
   * Failover IPs: `declared` in the site file (ordered from the provider) or
   * `assigned` by the provider's API when the stack creates them.
   */
  readonly failoverIps: "declared" | "assigned";
  /** Addresses of the supernet the provider keeps for itself (no segment may contain them). */
  reservedAddresses(site: SiteFile): Cidr[];
  /** The provider's rules and limits, as problems `<file>: <field>: <rule>: <fix>`, before anything is planned. */
  siteProblems(site: SiteFile, file: string, context: SiteContext): string[];
  readonly segments: SegmentNetwork;
  readonly failover: FailoverScript;
  readonly dataDisk: DataDisk;
  /** What holds an internal service address (the Kubernetes API): the hosts by ARP, or the provider's load balancer. */
  readonly internalAddress: "kube-vip-arp" | "provider-load-balancer";
  /** Statements the plan prints about this provider (limits that are no validation rule, rate limits). */
  notes(model: SiteModel): string[];
  /** What `npm run new-site` writes for this provider. */
  readonly scaffold: ProviderScaffold;
}
