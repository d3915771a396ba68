/**
 * The site's zone policy as data: which traffic may flow between the
 * internet, the management allowlist, the segments, the partner sites and the
 * BGP peers. The nftables renderer turns it into the edge firewall's forward
 * and input chains and each host's packet filter; a provider's cloud firewall
 * can be rendered from the same rules (take those whose `from` is `internet`,
 * `allowlist` or `bgp-peer`), so there is one policy, not two.
 */
import type { SiteModel } from "../model/model";
import { partnersOf } from "../model/partners";
import type { Role } from "../model/schema";
import { ROLES } from "../model/schema";
import { DEFAULT_SERVICES, ProxiedService, TunnelPeer } from "./types";

/** Where traffic comes from or goes to. */
export type Zone =
  | { readonly kind: "internet" }
  /** The operator's management prefixes (`management.allowlist`), reaching hosts over the internet. */
  | { readonly kind: "allowlist" }
  /** One segment of the site. */
  | { readonly kind: "segment"; readonly segment: string }
  /** Every segment of the site (its supernet). */
  | { readonly kind: "site" }
  /** The hosts' own addresses, whichever interface the traffic arrives on. */
  | { readonly kind: "hosts" }
  /**
   * The partner site's supernet (replication), reached only through `tunnel` (the site-to-site WireGuard
   * interface) where one is planned: with the tunnel down, partner traffic must not cross the internet in
   * clear, and a packet claiming a partner source from anywhere else is dropped.
   */
  | { readonly kind: "partner"; readonly site: string; readonly tunnel?: string }
  /** A BGP peer of the edge firewall. */
  | { readonly kind: "bgp-peer"; readonly peer: string };

export type ZoneProtocol = "tcp" | "udp" | "icmp" | "vrrp" | "any";

/** One allow rule; everything not allowed is dropped. */
export interface ZoneRule {
  /** Stable key, also the nftables rule comment (for example `internet-to-proxy-web`). */
  readonly name: string;
  readonly description: string;
  readonly from: Zone;
  readonly to: Zone;
  /** `icmp` means echo requests; other ICMP travels as related traffic. `vrrp` is IP protocol 112. */
  readonly protocol: ZoneProtocol;
  /** Destination ports for tcp/udp, ascending; empty means every port. */
  readonly ports: ReadonlyArray<number>;
  /** Source prefixes (`a.b.c.d/len`); empty means any source. */
  readonly sources: ReadonlyArray<string>;
  /** Destination prefixes; empty means any address of `to`. */
  readonly destinations: ReadonlyArray<string>;
  /** Roles whose hosts accept this traffic on their own input (edge input chain, host packet filters). */
  readonly targets: ReadonlyArray<Role>;
  /** True when the traffic crosses the edge firewall (its forward chain). */
  readonly forwarded: boolean;
  /**
   * Proved by the state it carries rather than by a probe: the daemons on both ends (here conntrackd)
   * answer nothing a probe could read, so the twin checks that the state arrived.
   */
  readonly provedBy?: "conntrack-sync" | "dns" | "alertmanager-cluster";
}

/** Port of the HAProxy stats endpoint (bound to each proxy's mgmt address). */
export const HAPROXY_STATS_PORT = 8404;
/** NFS (v4 only needs 2049). */
export const NFS_PORT = 2049;
export const SSH_PORT = 22;
/**
 * The fence's own sshd on each pair member (mgmt address only): a key that can
 * do nothing but power the host off, apart from the operators' sshd on 22.
 */
export const FENCE_SSH_PORT = 2201;
/**
 * conntrackd's state synchronisation between the firewall members (unicast
 * UDP on the heartbeat link; the port is conntrackd's default, conntrackd.conf(5)).
 */
export const CONNTRACK_SYNC_PORT = 3780;
export const BGP_PORT = 179;
/**
 * DRBD's replication between the storage pair members: one TCP port per
 * resource (drbd.conf(5) `address`; its examples count up from 7788), and a
 * site has one resource (`DRBD_RESOURCE`, lib/render/storage.ts).
 */
export const DRBD_PORT = 7789;
export const KUBERNETES_API_PORT = 6443;
/**
 * Ports of the ingress on the virtualization hosts: read-write traffic on one,
 * read-only traffic on the other (the application instance behind it runs
 * with writes disabled). A standby answers its names on the read-only port
 * until it is promoted, which moves them to the read-write port.
 */
export const INGRESS_PORTS = { readWrite: 8443, readOnly: 8444 } as const;

/**
 * Monitoring (each the upstream default, so a packaged exporter needs no flag to move it):
 * Prometheus 9090 and Alertmanager 9093 with its cluster gossip 9094 (prometheus(1), alertmanager(1)),
 * node exporter 9100, bird_exporter 9324 (the Prometheus default port allocations wiki page),
 * and HAProxy's built-in exporter on its own frontend, 8405 (HAProxy's "Prometheus" docs use it).
 */
export const MONITORING_PORTS = {
  prometheus: 9090,
  alertmanager: 9093,
  alertmanagerCluster: 9094,
  nodeExporter: 9100,
  birdExporter: 9324,
  haproxyExporter: 8405,
} as const;
/** Authoritative DNS (RFC 1035 §4.2: UDP and TCP on 53). */
export const DNS_PORT = 53;

/** The ports customers reach the proxies on: HTTP (redirected to HTTPS) and HTTPS. */
export const WEB_PORTS = [80, 443] as const;
/** What internal hosts may reach on the internet: DNS, HTTP(S) for packages and APIs, NTP. */
export const EGRESS = { tcp: [53, 80, 443], udp: [53, 123] } as const;

/**
 * Sites whose supernets take part in this site's replication: its partners
 * (`partnersOf`: its own partner and every site it stands by for), and the
 * peers of its tunnels (a migration between sites that are not partners).
 */
export function partnerSites(model: SiteModel, sites: ReadonlyArray<SiteModel>, tunnelPeers: ReadonlyArray<TunnelPeer> = []): SiteModel[] {
  const peers = new Set([...partnersOf(model, sites).map((s) => s.name), ...tunnelPeers.map((t) => t.site)]);
  return sites.filter((s) => s.name !== model.name && peers.has(s.name)).sort((a, b) => a.name.localeCompare(b.name));
}

/** Database ports replication and dumps use (MariaDB, PostgreSQL). */
export const DATABASE_PORTS = [3306, 5432] as const;

const host32 = (address: string) => `${address}/32`;

/**
 * The destination NAT of an own-prefix site: web traffic to the public proxy
 * address goes to the proxy pair's VIP in dmz. Undefined where the site has no
 * own prefix (a provider failover IP lands on the active proxy itself). The
 * nftables renderer writes it; the twin translates probes with it.
 */
export function publicWebDnat(model: SiteModel): { address: string; ports: ReadonlyArray<number>; to: string } | undefined {
  if (model.public.mode !== "own-prefix") return undefined;
  const vip = model.pairs.find((p) => p.role === "proxy")?.vips.find((v) => v.segment === "dmz")?.address;
  return vip ? { address: model.public.proxyAddress, ports: WEB_PORTS, to: vip } : undefined;
}

/**
 * The destination NAT of an own-prefix site's name server: DNS (UDP and TCP)
 * to the public proxy address goes to the proxy VIP, where PowerDNS listens
 * on any address. Undefined where the site has no own prefix (the failover IP
 * lands on the active proxy itself).
 */
export function publicDnsDnat(model: SiteModel): { address: string; port: number; to: string } | undefined {
  const web = publicWebDnat(model);
  return web ? { address: web.address, port: DNS_PORT, to: web.to } : undefined;
}

/**
 * The address customers reach a site's proxies on, where the site file fixes
 * it: an own prefix's proxy address, or the failover IP a pre-provisioned site
 * declares. Undefined for a Hetzner Cloud site, whose floating IP exists once
 * its stack ran (the stack's `proxyAddress` output).
 */
export function publicProxyAddress(model: SiteModel): string | undefined {
  if (model.public.mode === "own-prefix") return model.public.proxyAddress;
  return model.public.declared?.proxy;
}

/**
 * The zone policy of a site, in a fixed order. `sites` (every site model)
 * adds the partner rules; without it the policy has none.
 * `services` adds the ports the proxies reach on the virtualization hosts.
 * `tunnelPeers` adds the peers of the site's tunnels and opens their UDP ports.
 */
export function zonePolicy(
  model: SiteModel,
  sites: ReadonlyArray<SiteModel> = [],
  services: ReadonlyArray<ProxiedService> = DEFAULT_SERVICES,
  tunnelPeers: ReadonlyArray<TunnelPeer> = [],
): ZoneRule[] {
  const seg = (name: string) => model.segments.find((s) => s.name === name);
  const cidrOf = (name: string) => seg(name)?.cidr;
  const allowlist = [...model.management.allowlist];
  const roleHosts = (role: Role) => model.hosts.filter((h) => h.role === role);
  const mgmtOf = (role: Role) =>
    roleHosts(role)
      .map((h) => h.interfaces.find((i) => i.segment === "mgmt")?.address)
      .filter((a): a is string => a !== undefined)
      .map(host32);
  const only = (...c: Array<string | undefined>) => c.filter((x): x is string => x !== undefined);
  const allRoles: Role[] = [...ROLES];
  // A rule from the monitoring servers (the storage hosts' mgmt addresses) to exporters in mgmt, never forwarded.
  const monitoringRule = (
    name: string,
    description: string,
    protocol: "tcp" | "udp",
    ports: number[],
    destinations: string[],
    targets: Role[],
  ): ZoneRule => ({
    name,
    description,
    from: { kind: "segment", segment: "mgmt" },
    to: { kind: "segment", segment: "mgmt" },
    protocol,
    ports,
    sources: mgmtOf("storage"),
    destinations,
    targets,
    forwarded: false,
  });
  const ownPrefix = model.public.mode === "own-prefix";
  const proxyVip = model.pairs.find((p) => p.role === "proxy")?.vips.find((v) => v.segment === "dmz")?.address;
  const storageVip = model.pairs.find((p) => p.role === "storage")?.vips.find((v) => v.segment === "data")?.address;
  // A failover IP the site file declares: web traffic is accepted on it only, not on the proxies' own addresses.
  const declaredProxy = model.public.mode === "provider-failover-ips" ? model.public.declared?.proxy : undefined;
  const servicePorts = [...new Set(services.map((s) => s.port))].sort((a, b) => a - b);

  const rules: ZoneRule[] = [
    // Only where the proxies serve something: with no service they render no web frontend, and nothing should
    // be open that nothing answers (a site that only stands by, before its first service).
    ...(services.length === 0
      ? []
      : [
          {
            name: "internet-to-proxy-web",
            description: ownPrefix
              ? "HTTP and HTTPS from anywhere to the proxy pair (DNAT of the public proxy address to the proxy VIP)"
              : "HTTP and HTTPS from anywhere to the proxy pair's provider failover IP (it lands on the active proxy)",
            from: { kind: "internet" },
            // With an own prefix the firewall forwards it to the VIP in dmz; a provider failover IP lands on the proxy's uplink.
            to: ownPrefix ? { kind: "segment", segment: "dmz" } : { kind: "hosts" },
            protocol: "tcp",
            ports: [...WEB_PORTS],
            sources: [],
            destinations: ownPrefix && proxyVip ? [host32(proxyVip)] : declaredProxy ? [host32(declaredProxy)] : [],
            targets: ["proxy"] as Role[],
            forwarded: ownPrefix,
          } satisfies ZoneRule,
        ]),
    // The authoritative name server on the proxies (PowerDNS, lib/footprint/dns.ts), as the web rule reaches them.
    ...(["udp", "tcp"] as const).map((protocol): ZoneRule => ({
      name: `internet-to-proxy-dns-${protocol}`,
      description: ownPrefix
        ? `DNS over ${protocol.toUpperCase()} from anywhere to the name server on the proxy pair (DNAT of the public proxy address to the proxy VIP)`
        : `DNS over ${protocol.toUpperCase()} from anywhere to the name server on the proxy pair's provider failover IP`,
      from: { kind: "internet" },
      to: ownPrefix ? { kind: "segment", segment: "dmz" } : { kind: "hosts" },
      protocol,
      ports: [DNS_PORT],
      sources: [],
      destinations: ownPrefix && proxyVip ? [host32(proxyVip)] : declaredProxy ? [host32(declaredProxy)] : [],
      targets: ["proxy"],
      forwarded: ownPrefix,
      // A probe's datagram is no DNS query: the twin proves the rule by resolving through it.
      provedBy: "dns",
    })),
    {
      name: "allowlist-to-ssh",
      description: "SSH from the management allowlist to every host",
      from: { kind: "allowlist" },
      to: { kind: "hosts" },
      protocol: "tcp",
      ports: [SSH_PORT],
      sources: allowlist,
      destinations: [],
      targets: allRoles,
      forwarded: false,
    },
    {
      name: "mgmt-to-ssh",
      description: "SSH from the mgmt segment to every host",
      from: { kind: "segment", segment: "mgmt" },
      to: { kind: "hosts" },
      protocol: "tcp",
      ports: [SSH_PORT],
      sources: only(cidrOf("mgmt")),
      destinations: [],
      targets: allRoles,
      forwarded: false,
    },
    // Monitoring: Prometheus on the storage pair scrapes every host's exporters over mgmt (lib/monitoring).
    monitoringRule(
      "monitoring-to-node-exporter",
      "Prometheus on the storage pair scrapes node exporter on every host",
      "tcp",
      [MONITORING_PORTS.nodeExporter],
      [],
      allRoles,
    ),
    monitoringRule(
      "monitoring-to-haproxy-exporter",
      "Prometheus on the storage pair scrapes HAProxy's exporter on the proxies",
      "tcp",
      [MONITORING_PORTS.haproxyExporter],
      mgmtOf("proxy"),
      ["proxy"],
    ),
    ...(model.public.mode === "own-prefix" && model.public.routing.kind === "bgp"
      ? [
          monitoringRule(
            "monitoring-to-bird-exporter",
            "Prometheus on the storage pair scrapes bird_exporter on the firewalls (BGP sessions)",
            "tcp",
            [MONITORING_PORTS.birdExporter],
            mgmtOf("firewall"),
            ["firewall"],
          ),
        ]
      : []),
    monitoringRule(
      "monitoring-cluster",
      "The two Prometheus and Alertmanager servers reach each other (Alertmanager's gossip, each other's UI and API)",
      "tcp",
      [MONITORING_PORTS.prometheus, MONITORING_PORTS.alertmanager, MONITORING_PORTS.alertmanagerCluster],
      mgmtOf("storage"),
      ["storage"],
    ),
    // Memberlist answers no probe's datagram: the twin proves the rule by the cluster the two Alertmanagers form.
    {
      ...monitoringRule(
        "monitoring-cluster-gossip",
        "Alertmanager's gossip between the two monitoring servers (UDP as well as TCP)",
        "udp",
        [MONITORING_PORTS.alertmanagerCluster],
        mgmtOf("storage"),
        ["storage"],
      ),
      provedBy: "alertmanager-cluster",
    },
    {
      name: "mgmt-to-proxy-stats",
      description: "HAProxy stats from the mgmt segment",
      from: { kind: "segment", segment: "mgmt" },
      to: { kind: "segment", segment: "mgmt" },
      protocol: "tcp",
      ports: [HAPROXY_STATS_PORT],
      sources: only(cidrOf("mgmt")),
      destinations: mgmtOf("proxy"),
      targets: ["proxy"],
      forwarded: false,
    },
    ...(model.virtualization.runtime === "kubernetes"
      ? [
          {
            name: "mgmt-to-kubernetes-api",
            description: "Kubernetes API from the mgmt segment",
            from: { kind: "segment", segment: "mgmt" } as const,
            to: { kind: "segment", segment: "mgmt" } as const,
            protocol: "tcp" as const,
            ports: [KUBERNETES_API_PORT],
            sources: only(cidrOf("mgmt")),
            destinations: mgmtOf("virtualization"),
            targets: ["virtualization" as const],
            forwarded: false,
          },
        ]
      : []),
    // No service, no rule: a tcp rule without ports would admit every port.
    ...(servicePorts.length > 0
      ? [
          {
            name: "dmz-to-app-services",
            description: "The proxies reach the services on the virtualization hosts",
            from: { kind: "segment", segment: "dmz" } as const,
            to: { kind: "segment", segment: "app" } as const,
            protocol: "tcp" as const,
            ports: servicePorts,
            sources: only(cidrOf("dmz")),
            destinations: only(cidrOf("app")),
            targets: ["virtualization" as const],
            forwarded: true,
          },
        ]
      : []),
    {
      name: "app-cluster",
      description: "Virtualization hosts talk to each other freely inside the app segment (cluster traffic)",
      from: { kind: "segment", segment: "app" },
      to: { kind: "segment", segment: "app" },
      protocol: "any",
      ports: [],
      sources: only(cidrOf("app")),
      destinations: [],
      targets: ["virtualization"],
      forwarded: false,
    },
    {
      name: "app-to-data-nfs",
      description: "NFS from the app segment to the storage pair's VIP (only the member that serves runs the NFS server)",
      from: { kind: "segment", segment: "app" },
      to: { kind: "segment", segment: "data" },
      protocol: "tcp",
      ports: [NFS_PORT],
      sources: only(cidrOf("app")),
      // The VIP only: the export follows the active member, and the members' own addresses serve no NFS.
      destinations: storageVip ? [host32(storageVip)] : only(cidrOf("data")),
      targets: ["storage"],
      forwarded: true,
    },
    {
      name: "data-to-storage-backup-ssh",
      description: "Backups into the other store: each storage host writes to its peer over SFTP (restic)",
      from: { kind: "segment", segment: "data" },
      to: { kind: "segment", segment: "data" },
      protocol: "tcp",
      ports: [SSH_PORT],
      sources: only(cidrOf("data")),
      destinations: only(cidrOf("data")),
      targets: ["storage"],
      forwarded: false,
    },
    {
      name: "data-to-app-database-dumps",
      description: "The storage hosts dump the databases on the virtualization hosts for backup",
      from: { kind: "segment", segment: "data" },
      to: { kind: "segment", segment: "app" },
      protocol: "tcp",
      ports: [...DATABASE_PORTS],
      sources: only(cidrOf("data")),
      destinations: only(cidrOf("app")),
      targets: ["virtualization"],
      forwarded: true,
    },
    {
      name: "site-to-hosts-ping",
      description: "Echo requests from inside the site to every host",
      from: { kind: "site" },
      to: { kind: "hosts" },
      protocol: "icmp",
      ports: [],
      sources: [model.supernet],
      destinations: [],
      targets: allRoles,
      forwarded: true,
    },
    {
      name: "allowlist-to-hosts-ping",
      description: "Echo requests from the management allowlist to every host",
      from: { kind: "allowlist" },
      to: { kind: "hosts" },
      protocol: "icmp",
      ports: [],
      sources: allowlist,
      destinations: [],
      targets: allRoles,
      forwarded: false,
    },
  ];

  // Egress: every routed segment reaches DNS, HTTP(S) and NTP on the internet (through outbound NAT).
  for (const s of model.segments.filter((x) => x.kind !== "heartbeat")) {
    for (const protocol of ["tcp", "udp"] as const) {
      rules.push({
        name: `${s.name}-to-internet-${protocol}`,
        description: `Egress from ${s.name} to the internet (${protocol} ${EGRESS[protocol].join(", ")})`,
        from: { kind: "segment", segment: s.name },
        to: { kind: "internet" },
        protocol,
        ports: [...EGRESS[protocol]],
        sources: [s.cidr],
        destinations: [],
        targets: [],
        forwarded: true,
      });
    }
  }

  // Replication with the partner site(s) and tunnel peers: storage to storage over SSH, and the databases
  // (streaming, binlog) between the virtualization hosts, both directions, only through the tunnels' supernets.
  for (const partner of partnerSites(model, sites, tunnelPeers)) {
    const tunnel = tunnelPeers.find((t) => t.site === partner.name)?.tunnel;
    const remote = { kind: "partner", site: partner.name, ...(tunnel ? { tunnel } : {}) } as const;
    rules.push(
      {
        name: `partner-${partner.name}-to-app-databases`,
        description: `Database replication from ${partner.name} to the databases on the virtualization hosts`,
        from: remote,
        to: { kind: "segment", segment: "app" },
        protocol: "tcp",
        ports: [...DATABASE_PORTS],
        sources: [partner.supernet],
        destinations: only(cidrOf("app")),
        targets: ["virtualization"],
        forwarded: true,
      },
      {
        name: `app-to-partner-${partner.name}-databases`,
        description: `Database replication from the virtualization hosts to ${partner.name}`,
        from: { kind: "segment", segment: "app" },
        to: remote,
        protocol: "tcp",
        ports: [...DATABASE_PORTS],
        sources: only(cidrOf("app")),
        destinations: [partner.supernet],
        targets: [],
        forwarded: true,
      },
      {
        name: `partner-${partner.name}-to-data-replication`,
        description: `Replication from ${partner.name} to the storage pair`,
        from: remote,
        to: { kind: "segment", segment: "data" },
        protocol: "tcp",
        ports: [SSH_PORT],
        sources: [partner.supernet],
        destinations: only(cidrOf("data")),
        targets: ["storage"],
        forwarded: true,
      },
      {
        name: `data-to-partner-${partner.name}-replication`,
        description: `Replication from the storage pair to ${partner.name}`,
        from: { kind: "segment", segment: "data" },
        to: remote,
        protocol: "tcp",
        ports: [SSH_PORT],
        sources: only(cidrOf("data")),
        destinations: [partner.supernet],
        targets: [],
        forwarded: true,
      },
    );
  }

  // The tunnels' UDP ports on the firewall pair, from the peer's endpoint where the site files know it.
  for (const peer of [...tunnelPeers].sort((a, b) => a.tunnel.localeCompare(b.tunnel))) {
    rules.push({
      name: `internet-to-${peer.tunnel}`,
      description: `WireGuard from ${peer.site} to the tunnel ${peer.tunnel}`,
      from: { kind: "internet" },
      to: { kind: "hosts" },
      protocol: "udp",
      ports: [peer.listenPort],
      sources: peer.endpoint ? [host32(peer.endpoint)] : [],
      destinations: [],
      targets: ["firewall"],
      forwarded: false,
    });
  }

  // Heartbeats: VRRP and echo requests only between the two members on the pair's own segment; VRRP also on
  // mgmt (the second path; echo requests there are site-to-hosts-ping's); the fence's sshd only from the peer, over mgmt.
  for (const pair of model.pairs) {
    const members = pair.members
      .map((m) => pair.heartbeat[m])
      .filter((a) => a !== undefined && a !== "")
      .map(host32);
    const mgmtMembers = pair.members
      .map((m) => pair.mgmt[m])
      .filter((a) => a !== undefined && a !== "")
      .map(host32);
    const zone = { kind: "segment", segment: pair.heartbeatSegment } as const;
    const mgmt = { kind: "segment", segment: "mgmt" } as const;
    rules.push(
      {
        name: `${pair.heartbeatSegment}-vrrp`,
        description: `VRRP between the ${pair.role} pair members`,
        from: zone,
        to: zone,
        protocol: "vrrp",
        ports: [],
        sources: members,
        destinations: members,
        targets: [pair.role],
        forwarded: false,
      },
      {
        name: `${pair.heartbeatSegment}-ping`,
        description: `Echo requests between the ${pair.role} pair members (the failover script's reachability check)`,
        from: zone,
        to: zone,
        protocol: "icmp",
        ports: [],
        sources: members,
        destinations: members,
        targets: [pair.role],
        forwarded: false,
      },
    );
    // The firewall members keep each other's connection tracking (conntrackd), on the heartbeat link.
    if (pair.role === "firewall" && !pair.dissolved)
      rules.push({
        name: `${pair.heartbeatSegment}-conntrack-sync`,
        description: "Connection tracking state between the firewall pair members (conntrackd)",
        from: zone,
        to: zone,
        protocol: "udp",
        ports: [CONNTRACK_SYNC_PORT],
        sources: members,
        destinations: members,
        targets: [pair.role],
        forwarded: false,
        provedBy: "conntrack-sync",
      });
    // The storage pair replicates its data volume (DRBD, protocol C) on its heartbeat link, between the two
    // members only: a link no other host is on, so replication never competes with the NFS clients on data.
    if (pair.role === "storage" && !pair.dissolved)
      rules.push({
        name: `${pair.heartbeatSegment}-drbd`,
        description: "DRBD replication of the data volume between the storage pair members",
        from: zone,
        to: zone,
        protocol: "tcp",
        ports: [DRBD_PORT],
        sources: members,
        destinations: members,
        targets: [pair.role],
        forwarded: false,
      });
    // A dissolved pair has no peer to hear or to fence.
    if (!pair.dissolved)
      rules.push(
        {
          name: `mgmt-vrrp-${pair.role}`,
          description: `VRRP between the ${pair.role} pair members on their second path`,
          from: mgmt,
          to: mgmt,
          protocol: "vrrp",
          ports: [],
          sources: mgmtMembers,
          destinations: mgmtMembers,
          targets: [pair.role],
          forwarded: false,
        },
        {
          name: `mgmt-fence-${pair.role}`,
          description: `The fence of the ${pair.role} pair: each member's key may only power the other off`,
          from: mgmt,
          to: mgmt,
          protocol: "tcp",
          ports: [FENCE_SSH_PORT],
          sources: mgmtMembers,
          destinations: mgmtMembers,
          targets: [pair.role],
          forwarded: false,
        },
      );
  }

  // BGP only with the configured peers.
  if (model.public.mode === "own-prefix" && model.public.routing.kind === "bgp") {
    for (const peer of model.public.routing.peers) {
      rules.push({
        name: `bgp-${peer.name}`,
        description: `BGP session with ${peer.name} (AS${peer.asn})`,
        from: { kind: "bgp-peer", peer: peer.name },
        to: { kind: "hosts" },
        protocol: "tcp",
        ports: [BGP_PORT],
        sources: [host32(peer.address)],
        destinations: [],
        targets: ["firewall"],
        forwarded: false,
      });
    }
  }
  return rules;
}
