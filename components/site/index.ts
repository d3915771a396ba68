import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import { HostInterface, SiteModel, addressPlan } from "../../lib/model/model";
import { PairedRole, ROLES, Role } from "../../lib/model/schema";
import { listenPortFor } from "../../lib/footprint/wireguard";
import { ProxiedService } from "../../lib/render/types";
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

export interface SiteArgs {
  /** The validated model of the site this stack deploys. */
  readonly model: SiteModel;
  /** The partner site's model: replication target, tunnel peer, partner rules. */
  readonly partner: SiteModel;
  /** Every site model, for the zone policy's partner rules. @default [model, partner] */
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
}

/** One location, laid out to the standard scheme, whatever the provider. */
export class Site extends pulumi.ComponentResource {
  public readonly model: SiteModel;
  public readonly partner: SiteModel;
  /** Provider label, for the plan. */
  public readonly provider: string;
  public readonly network: NetworkSegments;
  /** The operator's SSH key at the provider, where hosts are created through an API. */
  public readonly sshKey?: hcloud.SshKey;
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

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:site:Site", name, {}, opts);
    const { model, partner } = args;
    if (partner.name !== model.partner) throw new Error(`${name}: ${partner.name} is not the partner of ${model.name} (${model.partner} is)`);
    this.model = model;
    this.partner = partner;
    const provisioning = provisioningFor(model);
    this.provider = provisioning.label;
    this.network = new NetworkSegments(`${name}-net`, { model, provisioning }, { parent: this });
    const access = provisioning.createAccess(name, model, args.sshPublicKey, this);
    this.sshKey = access.sshKey;
    const context: HostContext = { model, provisioning, segments: this.network.carrier, access, userData: args.userData };

    const firewallPair = model.pairs.find((p) => p.role === "firewall");
    if (!firewallPair) throw new Error(`${model.name} has no firewall pair`);
    const publicPlan = prefixPlan(model, provisioning.ownPrefix, firewallPair);
    const heldBy = (role: PairedRole) =>
      publicPlan.addresses.filter((a) => a.holder === role).map((a) => ({ purpose: a.purpose, address: a.address, source: a.source }));

    this.firewall = new Firewall(
      `${name}-fw`,
      { context, sites: args.sites ?? [model, partner], services: args.services, publicAddresses: heldBy("firewall") },
      { parent: this },
    );
    // Every other host is created after the provider firewalls exist, so it starts filtered.
    const guarded: HostContext = { ...context, after: Object.values(this.firewall.cloudFirewalls).map((c) => c!.firewall) };
    this.storage = new Storage(`${name}-stor`, { context: guarded, partner }, { parent: this });
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
    this.registerOutputs({
      model: this.model,
      partner: this.partner,
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
    });
  }
}

type HostOutput = { name: string; role: Role; physical: string; origin: string; publicAddress: string; interfaces: HostInterface[] };

/**
 * The outputs of a site stack: the address plan, the failover addresses, the
 * hosts by role with their addresses, the pairs, and what the partner site
 * needs to connect. No secrets: those stay inside the pairs.
 */
export function siteOutputs(site: Site): Record<string, unknown> {
  const { model, partner } = site;
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
