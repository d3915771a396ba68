/**
 * The Pulumi half of the Hetzner Cloud adapter: one private network per
 * site with one cloud subnet per segment, servers in spread placement groups,
 * floating IPs, volumes, internal load balancers and one cloud firewall per
 * role, all through `@pulumi/hcloud`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import type { HostModel, PairModel, SiteModel } from "../../model/model";
import type { Role } from "../../model/primitives";
import type { StackConfig } from "../../model/schema";
import { InputError } from "../../model/validate";
import { cidr, formatAddress } from "../../net/ipv4";
import type { CloudFirewallRule } from "../../../components/firewall/cloud-rules";
import { type FenceAction, type FencingPlan, mgmtFence, MGMT_FENCE } from "../fencing";
import type {
  Access,
  CloudFirewall,
  FailoverAddress,
  InternalAddress,
  InternalAddressRequest,
  Machine,
  MachineRequest,
  Placement,
  MissingConfig,
  Provisioning,
  SegmentCarrier,
  StackSetup,
  StoreDisk,
} from "../provisioning";
import { roleSelector, siteLabels } from "../provisioning";
import { HCLOUD_API, HCLOUD_NETWORK_ZONE, HCLOUD_PUBLIC_GATEWAY, hcloudAliasIps, hcloudNetworkName } from ".";

/** Firewalls a Hetzner Cloud server can be attached to at most. */
export const HCLOUD_FIREWALLS_PER_SERVER = 5;
/** The smallest Hetzner load balancer type: one internal TCP service needs no more (docs.hetzner.com/cloud/load-balancers/overview). */
export const HCLOUD_INTERNAL_LB_TYPE = "lb11";
/** Rules one Hetzner Cloud firewall holds at most. */
export const HCLOUD_RULES_PER_FIREWALL = 500;

/**
 * Fencing through the mgmt sshd first, Hetzner Cloud's power-off action
 * second: a hard power-off of the failed member's server, confirmed by its
 * status. The API token comes from the provider environment file on the
 * hosts (`HCLOUD_TOKEN`), never from here.
 */
export function hcloudFencing(pair: PairModel, serverIds: Readonly<Record<string, string>>): FencingPlan {
  const fence: Record<string, FenceAction[]> = {};
  if (!pair.dissolved) {
    for (const member of pair.members) {
      const id = serverIds[member];
      if (id === undefined) throw new Error(`${pair.name}: no server id for ${member}`);
      fence[member] = [
        mgmtFence(pair, member),
        {
          run: `POST ${HCLOUD_API}/servers/${id}/actions/poweroff (token from /etc/standort/provider.env)`,
          verify: `GET ${HCLOUD_API}/servers/${id}: status "off"`,
        },
      ];
    }
  }
  return {
    description: `power off the failed member through ${MGMT_FENCE}, else through the Hetzner Cloud API (POST /servers/{id}/actions/poweroff)`,
    fence,
  };
}

/**
 * The gateway of the hcloud route that sends everything leaving the network
 * to the firewall pair: the pair's first segment VIP that Hetzner Cloud
 * accepts as a gateway. The network's first address belongs to Hetzner's own
 * router and 172.31.1.1 is every server's public gateway; both are refused.
 */
export function hcloudRouteGateway(model: SiteModel): string {
  const networkFirst = formatAddress(cidr(model.supernet).network + 1);
  const firewall = model.pairs.find((p) => p.role === "firewall");
  const usable = firewall?.vips.find((v) => v.address !== networkFirst && v.address !== HCLOUD_PUBLIC_GATEWAY);
  if (!usable) {
    throw new InputError([
      `${model.file}: network: no firewall VIP can be the Hetzner Cloud route gateway (${networkFirst} is the network's first address, ${HCLOUD_PUBLIC_GATEWAY} the public gateway): add a segment`,
    ]);
  }
  return usable.address;
}

/**
 * How a host attaches to the hcloud network: one attachment per server and
 * network, so the host's first segment address is the attachment's IP and its
 * other segments' addresses are alias IPs.
 */
export function serverNetworkPlan(host: HostModel, model: SiteModel): { segment: string; ip: string; aliasIps: string[] } {
  const [primary] = host.interfaces;
  if (!primary) throw new Error(`${host.name} joins no segment`);
  // The active member of a pair starts with the pair's VIPs; the failover script moves them on takeover.
  const holdsVips = model.pairs.some((p) => p.active === host.name);
  return { segment: primary.segment, ip: primary.address, aliasIps: hcloudAliasIps(model, host.name, holdsVips) };
}

/** Hetzner Cloud: one private network per site, one cloud subnet per segment, servers through the API. */
export class HcloudProvisioning implements Provisioning {
  readonly label: string;
  readonly ownPrefix = {
    routable: false,
    how: "Hetzner Cloud has no documented way to route a customer-owned prefix (BYOIP): the site uses floating IPs",
  };
  // Hetzner's network answers ARP itself: a VIP is an alias IP of the server's
  // attachment and moves only through the API.
  readonly vipTakeover =
    "set the VIPs as alias IPs of its own network attachment, next to its segment addresses (POST /v1/servers/{id}/actions/change_alias_ips); gratuitous ARP does not move them";
  constructor(private readonly location: string) {
    this.label = `Hetzner Cloud ${location}`;
  }

  createSegments(name: string, model: SiteModel, parent: pulumi.Resource): SegmentCarrier {
    const gateway = hcloudRouteGateway(model);
    // The failover scripts look the network up by this name to move VIPs.
    const network = new hcloud.Network(
      name,
      { name: hcloudNetworkName(model), ipRange: model.supernet, labels: siteLabels(model) },
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
    // Hetzner's router forwards between the subnets of one network by itself;
    // everything else (internet, partner supernets) goes to the firewall pair.
    const routes = {
      default: new hcloud.NetworkRoute(
        `${name}-default`,
        { networkId: network.id.apply(Number), destination: "0.0.0.0/0", gateway },
        { parent, dependsOn: Object.values(subnets) },
      ),
    };
    const networkFirst = formatAddress(cidr(model.supernet).network + 1);
    return {
      network,
      subnets,
      routes,
      notes: [
        `Hetzner Cloud routes between the subnets of ${name} itself: segments are kept apart by each host's packet filter (the zone policy), and the cloud firewalls filter only public interfaces`,
        `traffic leaving the network goes to the firewall pair through the route 0.0.0.0/0 via ${gateway}, an alias IP the active firewall holds`,
        `${networkFirst} is Hetzner's router in this network: no host or VIP may use it`,
      ],
    };
  }

  createAccess(name: string, model: SiteModel, sshPublicKey: pulumi.Input<string> | undefined, parent: pulumi.Resource): Access {
    if (sshPublicKey === undefined) {
      throw new InputError([
        `${model.file}: provider: a Hetzner Cloud site needs standort:sshPublicKey in its stack configuration (installed on every server)`,
      ]);
    }
    return {
      sshKey: new hcloud.SshKey(
        `${name}-operator`,
        { name: `${model.name}-operator`, publicKey: sshPublicKey, labels: siteLabels(model) },
        { parent },
      ),
    };
  }

  createPlacement(name: string, model: SiteModel, physical: string, role: Role, parent: pulumi.Resource): Placement {
    const group = new hcloud.PlacementGroup(
      `${name}-${physical}`,
      { name: `${model.name}-${physical}`, type: "spread", labels: siteLabels(model, role) },
      { parent },
    );
    return { name: physical, group };
  }

  createMachine(name: string, request: MachineRequest, parent: pulumi.Resource): Machine {
    const { site, host } = request;
    if (site.provider.kind !== "hcloud") throw new Error(`${site.name} is not a Hetzner Cloud site`);
    if (!request.placement?.group) throw new Error(`${host.name} needs its spread placement group ${host.physical}`);
    const server = new hcloud.Server(
      name,
      {
        name: host.name,
        serverType: site.provider.serverTypes[host.role],
        image: site.provider.image,
        location: this.location,
        placementGroupId: request.placement.group.id.apply(Number),
        sshKeys: request.access.sshKey ? [request.access.sshKey.id] : [],
        // IPv4 only: the address plan, the allowlist and the private network are IPv4.
        publicNets: [{ ipv4Enabled: true, ipv6Enabled: false }],
        labels: siteLabels(site, host.role),
        userData: request.userData,
        shutdownBeforeDeletion: true,
      },
      // User data runs once at first boot; later changes are delivered over
      // SSH. Ignoring it keeps a new bootstrap from replacing every server.
      { parent, ignoreChanges: ["userData"], dependsOn: [...(request.after ?? [])] },
    );
    const attach = serverNetworkPlan(host, site);
    const subnet = request.segments.subnets[attach.segment];
    // A separate attachment, not inline `networks`: inline networks replace the server on every update.
    // A pair member's alias IPs carry the pair's VIPs, which its failover script moves at run time
    // (change_alias_ips): the declared list is only where they start, so a refresh after a takeover must not
    // move them back onto the member that was fenced. Its own segment addresses change only with the layout.
    const paired = site.pairs.some((p) => p.members.includes(host.name));
    const serverNetwork = new hcloud.ServerNetwork(
      `${name}-private`,
      { serverId: server.id.apply(Number), subnetId: subnet.id, ip: attach.ip, aliasIps: attach.aliasIps },
      {
        parent,
        dependsOn: host.interfaces.map((i) => request.segments.subnets[i.segment]),
        ...(paired ? { ignoreChanges: ["aliasIps"] } : {}),
      },
    );
    return { origin: "api", publicAddress: server.ipv4Address, providerId: server.id, server, serverNetwork };
  }

  createFailoverAddress(name: string, model: SiteModel, purpose: string, holder: Machine, parent: pulumi.Resource): FailoverAddress {
    if (!holder.server) throw new Error(`${name}: a floating IP needs a Hetzner Cloud server to hold it`);
    const floatingIp = new hcloud.FloatingIp(
      name,
      {
        name: `${model.name}-${purpose}`,
        type: "ipv4",
        homeLocation: this.location,
        description: `${model.name} ${purpose} failover address`,
        labels: siteLabels(model),
      },
      { parent },
    );
    const assignment = new hcloud.FloatingIpAssignment(
      `${name}-assignment`,
      { floatingIpId: floatingIp.id.apply(Number), serverId: holder.server.id.apply(Number) },
      // The active member's takeover script moves the address at run time; the
      // declared holder is only where it starts, so a takeover is not undone.
      { parent, ignoreChanges: ["serverId"] },
    );
    return {
      purpose,
      address: floatingIp.ipAddress,
      how: `Hetzner floating IP homed in ${this.location}; the member that becomes active assigns it to itself (POST /v1/floating_ips/{id}/actions/assign, seconds to tens of seconds)`,
      floatingIp,
      assignment,
    };
  }

  // Hetzner's network answers ARP itself, so no host can claim an address by ARP (kube-vip's mode): a load balancer
  // attached to the segment's subnet holds it and checks the targets (Load Balancers: docs.hetzner.com/cloud/load-balancers).
  createInternalAddress(name: string, model: SiteModel, request: InternalAddressRequest, parent: pulumi.Resource): InternalAddress {
    const subnet = request.segments.subnets[request.segment];
    if (!subnet) throw new Error(`${name}: no subnet for segment ${request.segment}`);
    const loadBalancer = new hcloud.LoadBalancer(
      `${name}-${request.key}`,
      {
        name: `${model.name}-${request.key}`,
        loadBalancerType: HCLOUD_INTERNAL_LB_TYPE,
        location: this.location,
        labels: siteLabels(model),
      },
      { parent },
    );
    const attachment = new hcloud.LoadBalancerNetwork(
      `${name}-${request.key}-network`,
      { loadBalancerId: loadBalancer.id.apply(Number), subnetId: subnet.id, ip: request.address, enablePublicInterface: false },
      { parent },
    );
    new hcloud.LoadBalancerService(
      `${name}-${request.key}-service`,
      {
        loadBalancerId: loadBalancer.id,
        protocol: "tcp",
        listenPort: request.port,
        destinationPort: request.port,
        healthCheck: { protocol: "tcp", port: request.port, interval: 5, timeout: 3, retries: 2 },
      },
      { parent, dependsOn: [attachment] },
    );
    for (const target of request.targets) {
      if (!target.machine.server) throw new Error(`${name}: ${target.host} was not created through the API`);
      new hcloud.LoadBalancerTarget(
        `${name}-${request.key}-${target.host}`,
        {
          type: "server",
          loadBalancerId: loadBalancer.id.apply(Number),
          serverId: target.machine.server.id.apply(Number),
          usePrivateIp: true,
        },
        { parent, dependsOn: [attachment] },
      );
    }
    return {
      loadBalancer,
      note: `${request.address}:${request.port} (${request.key}) is held by a Hetzner load balancer in the ${request.segment} subnet, in front of ${request.targets.map((t) => t.host).join(", ")}`,
    };
  }

  createStoreDisk(name: string, model: SiteModel, host: HostModel, machine: Machine, sizeGb: number, parent: pulumi.Resource): StoreDisk {
    if (!machine.server) throw new Error(`${name}: a volume needs a Hetzner Cloud server`);
    const volume = new hcloud.Volume(
      name,
      // Unformatted: the store builds its own pool (snapshots, send/receive) on the raw device.
      { name: `${host.name}-data`, size: sizeGb, location: this.location, labels: siteLabels(model, host.role) },
      { parent },
    );
    const attachment = new hcloud.VolumeAttachment(
      `${name}-attachment`,
      { volumeId: volume.id.apply(Number), serverId: machine.server.id.apply(Number), automount: false },
      { parent },
    );
    return { sizeGb, device: volume.id.apply((id) => `/dev/disk/by-id/scsi-0HC_Volume_${id}`), volume, attachment };
  }

  createCloudFirewalls(
    name: string,
    model: SiteModel,
    rulesByRole: Readonly<Record<Role, ReadonlyArray<CloudFirewallRule>>>,
    parent: pulumi.Resource,
  ): Partial<Record<Role, CloudFirewall>> {
    const result: Partial<Record<Role, CloudFirewall>> = {};
    for (const role of Object.keys(rulesByRole) as Role[]) {
      const rules = rulesByRole[role];
      if (rules.length > HCLOUD_RULES_PER_FIREWALL) {
        throw new InputError([
          `${model.file}: the ${role} zone policy needs ${rules.length} cloud firewall rules; Hetzner Cloud allows ${HCLOUD_RULES_PER_FIREWALL}`,
        ]);
      }
      // One firewall per role, selected by label: every server matches exactly
      // one (the limit is 5), and a new server is covered without touching the firewall.
      const firewall = new hcloud.Firewall(
        `${name}-${role}`,
        {
          name: `${model.name}-${role}`,
          labels: siteLabels(model, role),
          applyTos: [{ labelSelector: roleSelector(model, role) }],
          rules: rules.map((r) => ({
            direction: r.direction,
            protocol: r.protocol,
            ...(r.port !== undefined ? { port: r.port } : {}),
            sourceIps: [...r.sourceIps],
            description: r.description,
          })),
        },
        { parent },
      );
      result[role] = { role, firewall };
    }
    return result;
  }

  fencing(_model: SiteModel, pair: PairModel, machines: Readonly<Record<string, Machine>>): pulumi.Output<FencingPlan> {
    const ids = pair.members.map((m) => {
      const id = machines[m]?.providerId;
      if (!id) throw new Error(`${pair.name}: ${m} has no Hetzner Cloud server id`);
      return id;
    });
    return pulumi.all(ids).apply(([first, second]) => hcloudFencing(pair, { [pair.members[0]]: first, [pair.members[1]]: second }));
  }
}

/** The Hetzner Cloud provisioning of a site (its location from the site file). */
export function hcloudProvisioning(model: SiteModel): Provisioning {
  if (model.provider.kind !== "hcloud") throw new Error(`${model.name} is not a Hetzner Cloud site`);
  return new HcloudProvisioning(model.provider.location);
}

/** A Hetzner Cloud stack: the hcloud provider with the project token, which the failover scripts use too. */
export function hcloudStackSetup(config: StackConfig, secrets: pulumi.Config, missing: MissingConfig): StackSetup {
  if (config.hcloudToken === undefined) throw missing("hcloudToken", "for a Hetzner Cloud site");
  if (config.sshPublicKey === undefined) throw missing("sshPublicKey", "for a Hetzner Cloud site (installed on new servers)", false);
  const token = secrets.requireSecret("hcloudToken");
  return { providers: { hcloud: new hcloud.Provider("hcloud", { token }) }, providerApiToken: token };
}
