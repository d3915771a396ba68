/**
 * The Hetzner Cloud adapter: servers, networks, floating IPs, volumes and
 * cloud firewalls created through its API (`provisioning.ts`); a routed
 * private network whose addresses reach a server only as alias IPs, so VIPs
 * and floating IPs move through the API, and a peer is powered off through it.
 */
import type { ProviderAdapter } from "../adapter";
import type { SiteModel } from "../../model/model";
import type { SiteFile } from "../../model/schema";
import { cidr, containsAddress, formatAddress, parseAddress, type Cidr } from "../../net/ipv4";
import {
  HCLOUD_API,
  HCLOUD_PRIVATE_MTU,
  HCLOUD_PRIVATE_NICS,
  HCLOUD_PUBLIC_GATEWAY,
  HCLOUD_SPREAD_GROUP_LIMIT,
  HCLOUD_SUBNETS_PER_NETWORK,
  hcloudProviderSchema,
} from "./schema";

export * from "./schema";

/**
 * The stable name of a store's volume. Hetzner Cloud names it
 * `/dev/disk/by-id/scsi-0HC_Volume_<id>`, and the id exists only once the
 * volume is created, while the renderers are pure functions of the site
 * model: a udev rule gives the store's one attached volume this name (udev's
 * `ID_SERIAL` of that by-id link is `0HC_Volume_<id>`).
 */
export const HCLOUD_VOLUME_LINK = "/dev/standort/data";
/** udev's serial of a Hetzner Cloud volume (`scsi-0HC_Volume_<id>` without the bus). */
export const HCLOUD_VOLUME_SERIAL_PREFIX = "0HC_Volume_";

/** Name of a Hetzner Cloud site's private network (the provisioning creates it, the failover script looks it up). */
export function hcloudNetworkName(model: SiteModel): string {
  return `${model.name}-net`;
}

/** The gateway every route of a Hetzner Cloud network goes through: the first address of its range. */
export function hcloudNetworkGateway(model: SiteModel): string {
  return formatAddress(cidr(model.supernet).network + 1);
}

/**
 * A Hetzner Cloud host's alias IPs on its network attachment: every segment
 * address but the first (which is the attachment's own IP) and, while it holds
 * them, its pair's VIPs. Hetzner's fabric delivers an address only to the
 * server it is an alias of, and to one server at a time.
 */
export function hcloudAliasIps(model: SiteModel, hostName: string, holdsVips: boolean): string[] {
  const host = model.hosts.find((h) => h.name === hostName);
  if (!host) throw new Error(`${model.name} has no host ${hostName}`);
  const own = host.interfaces.slice(1).map((i) => i.address);
  const pair = model.pairs.find((p) => p.members.includes(hostName));
  return holdsVips && pair ? [...own, ...pair.vips.map((v) => v.address)] : own;
}

const ROLE_SHORT = { firewall: "fw", proxy: "proxy", storage: "stor", virtualization: "virt" } as const;

export const hcloudAdapter: ProviderAdapter = {
  id: "hcloud",
  operator: "hetzner",
  schema: hcloudProviderSchema,
  describe: (provider) => (provider.kind === "hcloud" ? `Hetzner Cloud ${provider.location}` : "Hetzner Cloud"),
  hosts: {
    kind: "created",
    // Spread placement groups hold at most 10 servers: group g holds ordinals 10g-9..10g.
    physical: (role, ordinal) => `spread-${ROLE_SHORT[role]}-${Math.floor((ordinal - 1) / HCLOUD_SPREAD_GROUP_LIMIT) + 1}`,
  },
  userData: true,
  ownPrefix: {
    routable: false,
    how: "Hetzner Cloud has no documented way to route a customer-owned prefix (BYOIP): the site uses floating IPs",
  },
  failoverIps: "assigned",
  /**
   * Hetzner Cloud's router owns the first address of a network's range; no
   * segment may contain it, or a VIP would collide with the provider's
   * gateway. Nor may a segment contain every server's public gateway
   * (`HCLOUD_PUBLIC_GATEWAY`) where the supernet holds it: the servers'
   * on-link route to it would hide the private address.
   */
  reservedAddresses(site: SiteFile): Cidr[] {
    const supernet = cidr(site.network.supernet);
    const publicGateway = parseAddress(HCLOUD_PUBLIC_GATEWAY)!;
    return [
      { network: supernet.network + 1, length: 32 },
      ...(containsAddress(supernet, publicGateway) ? [{ network: publicGateway, length: 32 }] : []),
    ];
  },
  siteProblems(site, file, context) {
    const problems: string[] = [];
    if (site.roles.storage.dataDisk !== undefined)
      problems.push(
        `${file}: roles.storage.dataDisk: a Hetzner Cloud store's data disk is its volume, named by the rendered udev rule: remove the field`,
      );
    // Every segment is one cloud subnet of the site's network.
    const segments = context.segments.length;
    const standard = segments - site.network.extraSegments.length;
    if (segments > HCLOUD_SUBNETS_PER_NETWORK)
      problems.push(
        `${file}: network.extraSegments: the site needs ${segments} segments (${standard} standard and heartbeat, ${site.network.extraSegments.length} extra), each a subnet of its Hetzner Cloud network, but a Hetzner Cloud network holds at most ${HCLOUD_SUBNETS_PER_NETWORK} subnets (Hetzner Networks FAQ): remove ${segments - HCLOUD_SUBNETS_PER_NETWORK} extra segment(s)`,
      );
    return problems;
  },
  segments: { kind: "routed", nics: HCLOUD_PRIVATE_NICS, mtu: HCLOUD_PRIVATE_MTU, gateway: hcloudNetworkGateway },
  failover: {
    tokenVariable: "HCLOUD_TOKEN",
    apiFence: true,
    movesNeedToken: () => true,
    preamble: () => [
      `HCLOUD_API=${HCLOUD_API}`,
      "# The token goes to curl on its standard input (a config line), never on a command line others can read.",
      'hcloud_api() { printf \'header = "Authorization: Bearer %s"\\n\' "${HCLOUD_TOKEN:-}" | curl -fsS --max-time 10 -K - "$@"; }',
      "server_id() { hcloud_api \"$HCLOUD_API/servers?name=$1\" | jq -er '.servers[0].id'; }",
      "",
    ],
    fenceSecond: () => [
      "# Second: Hetzner Cloud's hard power-off of the peer's server.",
      "fence_second() {",
      '\tid=$(server_id "$PEER") || return 1',
      '\thcloud_api -X POST "$HCLOUD_API/servers/$id/actions/poweroff" >/dev/null',
      "}",
    ],
    moveAddress(_model, move, common) {
      if (move.kind !== "failover-ip") throw new Error("Hetzner Cloud moves only floating IPs (it routes no own prefix)");
      return [
        ...common.uplink,
        ...(move.purpose === "nat"
          ? [
              `nat_source() { nft flush map ip standort_nat ${common.natSourceMap} && nft add element ip standort_nat ${common.natSourceMap} "{ tcp : $1, udp : $1, icmp : $1 }"; }`,
            ]
          : []),
        `FAILOVER_IP_NAME=${common.shQuote(move.name)}`,
        "# Hetzner Cloud: assign the floating IP (looked up by name) to this server.",
        "move_failover_address() {",
        '\tfip=$(hcloud_api "$HCLOUD_API/floating_ips?name=$FAILOVER_IP_NAME") || return 1',
        "\tfid=$(printf '%s' \"$fip\" | jq -er '.floating_ips[0].id') || return 1",
        "\taddress=$(printf '%s' \"$fip\" | jq -er '.floating_ips[0].ip') || return 1",
        '\tself=$(server_id "$SELF") || return 1',
        '\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"server\\":$self}" "$HCLOUD_API/floating_ips/$fid/actions/assign" >/dev/null || return 1',
        '\thold_address "$address"',
        ...(move.purpose === "nat"
          ? [
              "\t# Outbound NAT takes the floating IP from now on (nftables' map; empty: the server's own address).",
              '\tnat_source "$address"',
            ]
          : []),
        "}",
      ];
    },
    // Its API finds servers and floating IPs by name.
    requiredEnv: () => [],
    moveVips(model, hostName, peer) {
      const json = (addresses: string[]) => `'${JSON.stringify(addresses)}'`;
      return [
        `VIP_NETWORK='${hcloudNetworkName(model)}'`,
        `SELF_ALIASES=${json(hcloudAliasIps(model, hostName, true))}`,
        `PEER_ALIASES=${json(peer ? hcloudAliasIps(model, peer, false) : [])}`,
        "# Hetzner Cloud: a VIP reaches a server only as an alias IP of its network attachment, and only one",
        "# server may hold it: take the VIPs off the (fenced) peer first, then put them on this server.",
        "move_vips() {",
        '\tnet=$(hcloud_api "$HCLOUD_API/networks?name=$VIP_NETWORK" | jq -er \'.networks[0].id\') && [ -n "$net" ] || return 1',
        '\tif [ -n "$PEER" ]; then',
        '\t\tpeer_id=$(server_id "$PEER") &&',
        '\t\t\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"network\\":$net,\\"alias_ips\\":$PEER_ALIASES}" "$HCLOUD_API/servers/$peer_id/actions/change_alias_ips" >/dev/null ||',
        '\t\t\tlog "could not take the VIPs off $PEER"',
        "\tfi",
        '\tself=$(server_id "$SELF") || return 1',
        '\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"network\\":$net,\\"alias_ips\\":$SELF_ALIASES}" "$HCLOUD_API/servers/$self/actions/change_alias_ips" >/dev/null',
        "}",
      ];
    },
  },
  dataDisk: {
    device: () => HCLOUD_VOLUME_LINK,
    udevRule: (model) =>
      [
        `# standort: the store's data volume under a stable name (${HCLOUD_VOLUME_LINK}). Rendered from ${model.file}; do not edit.`,
        "# Hetzner Cloud names it /dev/disk/by-id/scsi-0HC_Volume_<id>; the id exists only after the volume is created.",
        "# A store has exactly one volume attached (the first-boot script refuses more than one).",
        `SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ENV{ID_SERIAL}=="${HCLOUD_VOLUME_SERIAL_PREFIX}*", SYMLINK+="${HCLOUD_VOLUME_LINK.replace(/^\/dev\//, "")}"`,
        "",
      ].join("\n"),
    guard: [
      "# Hetzner Cloud: exactly one volume, or the stable name could point at the wrong one.",
      `set -- /dev/disk/by-id/scsi-${HCLOUD_VOLUME_SERIAL_PREFIX}*`,
      '[ -e "$1" ] || refuse "no Hetzner Cloud volume is attached"',
      '[ "$#" -eq 1 ] || refuse "$# Hetzner Cloud volumes are attached; the store takes exactly one"',
      "udevadm settle --timeout=30 || true",
    ],
  },
  internalAddress: "provider-load-balancer",
  notes: () => [],
  // new-site: no hosts to list (the API creates them from the roles), the location from --region, the API token.
  scaffold: {
    label: "Hetzner Cloud",
    region: { field: "location", required: true, values: hcloudProviderSchema.shape.location.options },
    describeSite: (title) => `Hetzner Cloud, ${title}`,
    failoverIpsName: "floating IPs",
    header: (site) => [
      `${site.title}: Hetzner Cloud (${site.region}), every server created through the API.`,
      "Hetzner Cloud cannot route an own prefix, so the site uses floating IPs.",
    ],
    provider: (site) => ["kind: hcloud", `location: ${site.region}`],
    publicReason: "Hetzner Cloud has no documented way to route a customer prefix (BYOIP)",
    // Its API finds servers and floating IPs by name: no providerEnv.
    stackComment: () => [],
    envPlaceholder: () => undefined,
    secrets: () => [
      "pulumi config set --secret standort:hcloudToken <token>",
      'pulumi config set standort:sshPublicKey "$(cat ~/.ssh/standort_deploy.pub)"',
    ],
  },
};
