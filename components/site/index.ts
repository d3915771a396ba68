import * as pulumi from "@pulumi/pulumi";
import { HostInterface, SiteModel, addressPlan } from "../../lib/model/model";
import { PairedRole, ROLES, Role } from "../../lib/model/schema";
import { listenPortFor } from "../../lib/footprint/wireguard";
import { FenceKeys, ProxiedService } from "../../lib/render/types";
import { FailoverPair } from "../failover-pair";
import { Firewall } from "../firewall";
import { Host, HostContext, describeHost } from "../host";
import { NetworkSegments } from "../network-segments";
import { provisioningFor } from "../provisioning";
import { ProxyTier } from "../proxy-tier";
import { RoutedPrefix } from "../routed-prefix";
import { prefixPlan } from "../routed-prefix/plan";
import { Storage } from "../storage";
import { VirtualizationHosts } from "../virtualization-hosts";
import * as random from "@pulumi/random";
import { DeliverableFile, HostConfig, deliverableFiles } from "../host-config";
import { SiteTunnels, SiteTunnelsArgs } from "../site-tunnels";
import { tunnelPeers } from "../../lib/footprint/wireguard";
import { RenderOptions, RenderSecrets, RenderedFile } from "../../lib/render/types";
import { placeholderSecrets, renderHostFiles } from "../../lib/render";

export interface SiteArgs {
  /** The validated model of the site this stack deploys. */
  readonly model: SiteModel;
  /**
   * The partner sites' models (`partnersOf`), the own partner first (replication target): tunnel peers, partner rules;
   * the others are the sites this one stands by for.
   */
  readonly partners: ReadonlyArray<SiteModel>;
  /** Every site model, for the zone policy's partner rules. @default [model, ...partners] */
  readonly sites?: ReadonlyArray<SiteModel>;
  /** The operator's public SSH key, installed on API-created hosts (required on Hetzner Cloud). */
  readonly sshPublicKey?: pulumi.Input<string>;
  /**
   * First-boot cloud-init user data by host name (API-created hosts only).
   * @default a minimal `#cloud-config` per host from its role's bootstrap
   */
  readonly userData?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Services the proxy pair routes to the virtualization hosts. @default one `platform` service on port 8080 */
  readonly services?: ReadonlyArray<ProxiedService>;
  /**
   * How the site's host files reach the hosts. Without it the site is laid out
   * but nothing is delivered (a layout-only preview).
   * @default no delivery
   */
  readonly delivery?: SiteDelivery;
  /** Files beyond the rendered host configuration, by host name (replication timers, database settings). @default none */
  readonly hostFiles?: Readonly<Record<string, ReadonlyArray<RenderedFile | DeliverableFile>>>;
  /** The site-to-site tunnels the firewall pair terminates, and the peers' published outputs. @default no tunnels */
  readonly tunnels?: Omit<SiteTunnelsArgs, "model">;
}

/** What delivery needs besides the rendered files. */
export interface SiteDelivery {
  /** Private SSH key the delivery logs in to the hosts with, as root. Secret. */
  readonly privateKey: pulumi.Input<string>;
  /** Provider API token for the failover scripts (fencing, failover IP moves). Secret. @default none: the scripts cannot call the provider */
  readonly providerApiToken?: pulumi.Input<string>;
  /** Extra environment of the failover scripts (provider ids, the move command of a provider without an API). @default {} */
  readonly providerEnv?: Readonly<Record<string, string>>;
}

/** One location, laid out to the standard scheme, whatever the provider. */
export class Site extends pulumi.ComponentResource {
  public readonly model: SiteModel;
  /** The own partner: the site that stands by for this one. */
  public readonly partner: SiteModel;
  /** Every partner (`partnersOf`), the own partner first, then the sites this one stands by for. */
  public readonly partners: ReadonlyArray<SiteModel>;
  /** Provider label, for the plan. */
  public readonly provider: string;
  public readonly network: NetworkSegments;
  /** The operator's SSH key at the provider, where hosts are created through an API. */
  public readonly sshKey?: pulumi.CustomResource;
  public readonly firewall: Firewall;
  public readonly storage: Storage;
  public readonly virtualization: VirtualizationHosts;
  public readonly proxy: ProxyTier;
  public readonly prefix: RoutedPrefix;
  /** Every host of the site by host name. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** The three pairs by role. */
  public readonly pairs: Readonly<Record<PairedRole, FailoverPair>>;
  /** The address plan table (segment, CIDR, gateway, usable range, VIPs). */
  public readonly addressPlan: ReturnType<typeof addressPlan>;
  /** BGP session passwords by peer name (own prefix announced by BGP). Secret; give them to the provider's side. */
  public readonly bgpPasswords: Readonly<Record<string, random.RandomPassword>>;
  /** The site's ends of its WireGuard tunnels. */
  public readonly tunnels?: SiteTunnels;
  /** The delivery of each host's files, by host name (empty without `delivery`). */
  public readonly configs: Readonly<Record<string, HostConfig>>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:site:Site", name, {}, opts);
    const { model, partners } = args;
    const partner = partners[0];
    if (!partner) throw new Error(`${name}: the partner ${model.partner}'s model is required`);
    if (partner.name !== model.partner)
      throw new Error(`${name}: ${partner.name} is not the partner of ${model.name} (${model.partner} is)`);
    for (const other of partners.slice(1)) {
      if (other.partner !== model.name)
        throw new Error(
          `${name}: ${other.name} is not a partner of ${model.name} (its partner is ${other.partner}): list the own partner first`,
        );
    }
    this.model = model;
    this.partner = partner;
    this.partners = partners;
    const provisioning = provisioningFor(model);
    this.provider = provisioning.label;
    this.network = new NetworkSegments(`${name}-net`, { model, provisioning }, { parent: this });
    const access = provisioning.createAccess(name, model, args.sshPublicKey, this);
    this.sshKey = access.sshKey;
    const userData = args.userData ?? renderedUserData(model, args);
    const context: HostContext = { model, provisioning, segments: this.network.carrier, access, userData };

    const firewallPair = model.pairs.find((p) => p.role === "firewall");
    if (!firewallPair) throw new Error(`${model.name} has no firewall pair`);
    const publicPlan = prefixPlan(model, provisioning.ownPrefix, firewallPair);
    const heldBy = (role: PairedRole) =>
      publicPlan.addresses.filter((a) => a.holder === role).map((a) => ({ purpose: a.purpose, address: a.address, source: a.source }));

    const peersOfTunnels = tunnelPeers(args.tunnels?.tunnels ?? [], model.name);
    this.firewall = new Firewall(
      `${name}-fw`,
      {
        context,
        sites: args.sites ?? [model, ...partners],
        services: args.services,
        tunnelPeers: peersOfTunnels,
        publicAddresses: heldBy("firewall"),
      },
      { parent: this },
    );
    // Every other host is created after the provider firewalls exist, so it starts filtered.
    const guarded: HostContext = { ...context, after: Object.values(this.firewall.cloudFirewalls).map((c) => c.firewall) };
    this.storage = new Storage(`${name}-stor`, { context: guarded, partners }, { parent: this });
    this.virtualization = new VirtualizationHosts(`${name}-virt`, { context: guarded }, { parent: this });
    this.proxy = new ProxyTier(
      `${name}-proxy`,
      { context: guarded, backends: this.virtualization.planned, services: args.services, publicAddresses: heldBy("proxy") },
      { parent: this },
    );
    this.prefix = new RoutedPrefix(
      `${name}-prefix`,
      { model, ownPrefix: provisioning.ownPrefix, firewall: this.firewall.pair, proxy: this.proxy.pair },
      { parent: this },
    );
    this.hosts = { ...this.firewall.hosts, ...this.proxy.hosts, ...this.storage.hosts, ...this.virtualization.hosts };
    this.pairs = { firewall: this.firewall.pair, proxy: this.proxy.pair, storage: this.storage.pair };
    this.addressPlan = addressPlan(model);

    const bgpPeers = model.public.mode === "own-prefix" && model.public.routing.kind === "bgp" ? model.public.routing.peers : [];
    this.bgpPasswords = Object.fromEntries(
      bgpPeers.map((peer) => [
        peer.name,
        // BIRD and most provider routers take up to 80 characters; letters and digits need no quoting anywhere.
        new random.RandomPassword(`${name}-bgp-${peer.name}`, { length: 32, special: false }, { parent: this }),
      ]),
    );

    this.tunnels = args.tunnels ? new SiteTunnels(`${name}-tunnels`, { model, ...args.tunnels }, { parent: this }) : undefined;
    const tunnelFiles = this.tunnels?.files ?? [];

    const configs: Record<string, HostConfig> = {};
    if (args.delivery) {
      const delivery = args.delivery;
      // Secret as a whole, not only by the secrecy of its parts.
      const secrets: pulumi.Output<RenderSecrets> = pulumi.secret(
        pulumi
          .all([
            pulumi.all(Object.values(this.pairs).map((p) => p.fenceKeys)),
            pulumi.all(Object.fromEntries(Object.entries(this.bgpPasswords).map(([peer, p]) => [peer, p.result]))),
            pulumi.output(delivery.providerApiToken ?? PLACEHOLDER_NO_TOKEN),
          ])
          .apply(([fence, bgp, providerApiToken]) => ({
            fence: Object.assign({}, ...fence) as Record<string, FenceKeys>,
            bgp: Object.keys(bgp).length > 0 ? bgp : undefined,
            providerApiToken,
          })),
      );
      const options: RenderOptions = {
        sites: args.sites ?? [model, ...partners],
        services: args.services,
        tunnelPeers: peersOfTunnels,
        sshAuthorizedKeys: typeof args.sshPublicKey === "string" ? [args.sshPublicKey] : undefined,
        providerEnv: delivery.providerEnv,
      };
      const firewallPair = model.pairs.find((p) => p.role === "firewall");
      const servingFirewalls = new Set(firewallPair?.dissolved ? [firewallPair.active] : (firewallPair?.members ?? []));
      // Members of a pair change one at a time, passive first: a broken file stops before it reaches the active member.
      const order = deliveryOrder(model);
      for (const hostName of order) {
        const host = this.hosts[hostName];
        const files = [
          ...deliverableFiles(model, hostName, secrets, options),
          ...(args.hostFiles?.[hostName] ?? []),
          // Tunnel keys go to the firewalls that may serve: not to a member a dissolved pair released.
          ...(host.role === "firewall" && servingFirewalls.has(hostName) ? tunnelFiles : []),
        ];
        const pair = model.pairs.find((p) => p.active === hostName && !p.dissolved);
        const after = pair ? [configs[pair.passive]?.done].filter((r): r is pulumi.Resource => r !== undefined) : [];
        configs[hostName] = new HostConfig(
          `${name}-cfg-${hostName}`,
          { hostName, connection: { host: host.publicAddress, privateKey: delivery.privateKey }, files, after },
          { parent: this },
        );
      }
    }
    this.configs = configs;
    this.registerOutputs({
      model: this.model,
      partner: this.partner,
      partners: this.partners,
      provider: this.provider,
      network: this.network,
      sshKey: this.sshKey,
      firewall: this.firewall,
      storage: this.storage,
      virtualization: this.virtualization,
      proxy: this.proxy,
      prefix: this.prefix,
      hosts: this.hosts,
      pairs: this.pairs,
      addressPlan: this.addressPlan,
      bgpPasswords: this.bgpPasswords,
      tunnels: this.tunnels,
      configs: this.configs,
    });
  }
}

/**
 * Stands in for a provider token where a site has none to give (a provider
 * without an API): the failover script then fences by command and moves
 * addresses with the declared move command.
 */
const PLACEHOLDER_NO_TOKEN = "none";

/**
 * First-boot user data of API-created hosts from the cloud-init renderer
 * (users, SSH keys, packages, the non-secret files). Secret files never go
 * into user data, which the metadata service serves to anyone on the host:
 * they arrive by delivery after creation. Undefined where the renderer has
 * nothing to provision or the operator key is not known yet.
 */
function renderedUserData(model: SiteModel, args: SiteArgs): Record<string, string> | undefined {
  if (typeof args.sshPublicKey !== "string") return undefined;
  const options: RenderOptions = {
    sites: args.sites ?? [model, ...args.partners],
    services: args.services,
    sshAuthorizedKeys: [args.sshPublicKey],
  };
  const entries = model.hosts.flatMap((h) => {
    const provision = renderHostFiles(model, h.name, placeholderSecrets(model), options).find((f) => f.delivery === "provision");
    return provision ? [[h.name, provision.content] as const] : [];
  });
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

/** Host names in delivery order: passive members before active ones, then by name. */
export function deliveryOrder(model: SiteModel): string[] {
  const activeOf = new Set(model.pairs.filter((p) => !p.dissolved).map((p) => p.active));
  return model.hosts.map((h) => h.name).sort((a, b) => Number(activeOf.has(a)) - Number(activeOf.has(b)) || a.localeCompare(b));
}

type HostOutput = { name: string; role: Role; physical: string; origin: string; publicAddress: string; interfaces: HostInterface[] };

/**
 * The outputs of a site stack: the address plan, the failover addresses, the
 * hosts by role with their addresses, the pairs, and what the partner site
 * needs to connect. No secrets: those stay inside the pairs.
 */
export function siteOutputs(site: Site): Record<string, unknown> {
  const { model, partner, partners } = site;
  const hostsByRole = pulumi
    .all(Object.values(site.hosts).map(describeHost))
    .apply((hosts: HostOutput[]) =>
      Object.fromEntries(ROLES.map((role) => [role, hosts.filter((h) => h.role === role).sort((a, b) => a.name.localeCompare(b.name))])),
    );
  const pairs = Object.fromEntries(
    Object.entries(site.pairs).map(([role, p]) => [
      role,
      {
        name: p.pairName,
        members: [...p.members],
        active: p.active,
        passive: p.passive,
        dissolved: p.dissolved,
        serving: [...p.serving],
        vrid: p.vrrp.vrid,
        priorities: p.vrrp.priorities,
        heartbeat: p.heartbeat,
        vips: p.vips,
        failoverAddresses: Object.keys(p.failoverAddresses).sort(),
      },
    ]),
  );
  const firewallEndpoints = pulumi
    .all(Object.values(site.firewall.hosts).map((h) => h.publicAddress.apply((address) => ({ host: h.hostName, address }))))
    .apply((e) => e.sort((a, b) => a.host.localeCompare(b.host)));
  const partnerFacing = pulumi.all([firewallEndpoints, site.prefix.addresses]).apply(([endpoints, addresses]) => ({
    site: model.name,
    code: model.code,
    supernet: model.supernet,
    prefixes: site.prefix.prefix ? [site.prefix.prefix] : [],
    firewallEndpoints: endpoints,
    // The tunnel leaves and arrives on the outbound NAT address; where the provider assigns it, it is known after deploy.
    tunnel: { endpoint: addresses.nat?.address ?? null, listenPort: listenPortFor(partner.supernet) },
    storageVip: site.storage.plan.export.address,
    // The sites it stands by for besides its partner, each with the port its tunnel listens on (absent where none).
    ...(partners.length > 1
      ? { standbyFor: partners.slice(1).map((p) => ({ site: p.name, supernet: p.supernet, listenPort: listenPortFor(p.supernet) })) }
      : {}),
  }));
  return {
    site: model.name,
    provider: site.provider,
    addressPlan: site.addressPlan,
    networkNotes: [...site.network.notes],
    publicRouting: {
      mode: site.prefix.mode,
      note: site.prefix.note,
      ...(site.prefix.prefix ? { prefix: site.prefix.prefix, blocks: site.prefix.blocks } : {}),
      ...(site.prefix.bgp ? { bgp: site.prefix.bgp } : {}),
      ...(site.prefix.nextHop ? { nextHop: site.prefix.nextHop } : {}),
    },
    failoverAddresses: site.prefix.addresses,
    hostsByRole,
    pairs,
    firewall: {
      defaultAction: site.firewall.defaultAction,
      managementAllowlist: [...site.firewall.managementAllowlist],
      rules: site.firewall.policy.map((r) => r.name),
    },
    proxy: { binds: site.proxy.plan.binds, services: site.proxy.plan.services, sizing: site.proxy.plan.sizing },
    storage: site.storage.plan,
    partnerFacing,
  };
}
