/**
 * The provider's side of the twin: its routers (where the failover and
 * floating IPs and the own prefix are routed, the BGP peers with BIRD, the
 * routed private network of Hetzner Cloud) and its API (the stand-in in
 * `provider-api.ts`, whose effects this applies). Provider differences of
 * the twin live here and in `lib/twin/world.ts`.
 */
import { ChildProcess, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hcloudRouteGateway } from "../../lib/providers/hcloud/provisioning";
import type { SiteModel } from "../../lib/model/model";
import { failoverIpName, tokenVariable } from "../../lib/render/keepalived";
import { ROBOT_SWITCHES_PER_HOUR, robotAdapter } from "../../lib/providers/hetzner-robot";
import { hcloudAliasIps, hcloudNetworkName } from "../../lib/providers/hcloud";
import { ionosNicKey } from "../../lib/providers/ionos";
import { adapterOf } from "../../lib/providers/registry";
import { NETCUP_REROUTE_MIN_INTERVAL_S, TwinWorld } from "../../lib/twin/world";
import { startUnit } from "./init";
import { ipIn, sysctlIn, veth } from "./links";
import { Machine, must, quietly } from "./machine";
import type { ProviderState } from "./provider-api";
import type { TwinTls } from "./tls";

/** An effect the provider applied: a route moved, alias IPs changed, a server powered off. */
export interface ProviderEffect {
  /** Epoch milliseconds. */
  readonly at: number;
  readonly effect: "route" | "aliases" | "poweroff";
  readonly ip?: string;
  readonly host?: string;
  readonly ips?: ReadonlyArray<string>;
  /** How: the provider's API, or the host's own `systemctl poweroff` (the fence over mgmt). @default the API */
  readonly via?: string;
}

/** What the provider stand-in needs of the twin. */
export interface ProviderContext {
  readonly model: SiteModel;
  readonly world: TwinWorld;
  readonly dir: string;
  readonly providerEnv?: Readonly<Record<string, string>>;
  readonly tls: TwinTls;
  /** A machine by name. */
  machine(name: string): Machine;
  /** Creates an outside machine (a further BGP router). */
  addOutsideMachine(name: string): Machine;
  /** A rendered file of a host, as booted. */
  file(host: string, path: string): string | undefined;
  /** The running hosts with their cabling index and machine. */
  runningHosts(): ReadonlyArray<{
    readonly name: string;
    readonly index: number;
    readonly attachment?: string;
    readonly internalNic: string;
    readonly machine: Machine;
  }>;
  /** Powers a host off (fencing through the API). */
  crash(host: string, why: string): Promise<void>;
  log(line: string): void;
}

export class ProviderStandIn {
  /** Current holder of each provider-routed address (failover and floating IPs, the static next hop). */
  readonly routed = new Map<string, string>();
  /** Alias IPs the Hetzner Cloud stand-in holds per server. */
  readonly aliases = new Map<string, ReadonlyArray<string>>();
  readonly effects: ProviderEffect[] = [];
  private api?: ChildProcess;
  private stopped = false;

  constructor(private readonly twin: ProviderContext) {}

  private get ns(): string {
    return this.twin.machine("provider").ns;
  }

  /** Starts the API stand-in, routes the failover addresses to the active members, and starts the BGP peers. */
  async start(): Promise<void> {
    await this.startApi();
    const m = this.twin.model;
    const active = (role: string) => m.pairs.find((p) => p.role === role)!.active;
    // The operator ordered the failover addresses routed to the members the site file names active.
    if (m.public.mode === "own-prefix" && m.public.routing.kind === "static") this.route(m.public.routing.nextHop, active("firewall"));
    if (m.public.mode === "provider-failover-ips") {
      const ips = m.public.declared ?? this.twin.world.failoverIps;
      if (ips) {
        this.route(ips.proxy, active("proxy"));
        this.route(ips.nat, active("firewall"));
      }
    }
    if (m.public.mode === "own-prefix" && m.public.routing.kind === "bgp") await this.startBgpPeers();
  }

  /** The provider API stand-in, in `internet`, with the site's provider state. */
  private async startApi(): Promise<void> {
    const m = this.twin.model;
    const world = this.twin.world;
    const tokenLine = this.twin
      .file(m.pairs[0].active, "/etc/standort/provider.env")
      ?.split("\n")
      .find((l) => l.startsWith(`${tokenVariable(m)}=`));
    const token = /='([^']*)'/.exec(tokenLine ?? "")?.[1] ?? "";
    let state: ProviderState = { token };
    if (m.provider.kind === "hcloud") {
      const servers = world.hosts.map((h, i) => ({
        id: 1000 + i,
        name: h.name,
        ip: h.attachment!,
        // As the provisioning attaches them: the active member of each pair holds its pair's VIPs.
        aliasIps: hcloudAliasIps(
          m,
          h.name,
          m.pairs.some((p) => p.active === h.name),
        ),
      }));
      const fips = world.failoverIps!;
      const pairActive = (role: string) => servers.find((s) => s.name === m.pairs.find((p) => p.role === role)!.active)!.id;
      state = {
        token,
        hcloud: {
          network: { id: 77, name: hcloudNetworkName(m), ipRange: m.supernet },
          servers,
          floatingIps: [
            { id: 501, name: failoverIpName(m, "proxy"), ip: fips.proxy, server: pairActive("proxy") },
            { id: 502, name: failoverIpName(m, "nat"), ip: fips.nat, server: pairActive("firewall") },
          ],
        },
      };
      for (const s of servers) this.aliases.set(s.name, [...s.aliasIps]);
    } else if (adapterOf(m).id === robotAdapter.id) {
      // Robot finds servers by their main IP; each declared failover IP starts at its pair's active member.
      const servers = Object.fromEntries(world.hosts.map((h) => [h.uplink.address, h.name]));
      const main = (role: string) => world.hosts.find((h) => h.name === m.pairs.find((p) => p.role === role)!.active)!.uplink.address;
      const ips = m.public.mode === "provider-failover-ips" ? m.public.declared : undefined;
      state = {
        token,
        robot: {
          credentials: token,
          servers,
          failoverIps: ips ? { [ips.proxy]: main("proxy"), [ips.nat]: main("firewall") } : {},
          switchesPerHour: ROBOT_SWITCHES_PER_HOUR,
        },
      };
    } else if (!("name" in m.provider)) {
      // A provider kind of its own (not hcloud, not preprovisioned) needs its stand-in here before the twin can boot it.
      throw new Error(`${m.name}: the twin has no stand-in of the ${adapterOf(m).id} provider's API`);
    } else if (m.provider.name === "ionos") {
      const env = this.twin.providerEnv ?? {};
      const nics: Record<string, string> = {};
      for (const h of world.hosts) {
        const id = env[ionosNicKey(h.name)];
        if (id) nics[id] = h.name;
      }
      state = { token, ionos: { datacenter: env.IONOS_DATACENTER_ID ?? "", lan: env.IONOS_LAN_ID ?? "", nics } };
    } else {
      // What the operator's command moves: the own prefix's next hop (to the firewall pair), or the declared
      // failover IPs (the proxy IP to the proxy pair, the NAT IP to the firewall pair), each from its active member.
      const active = (role: string) => m.pairs.find((p) => p.role === role)!.active;
      const moved: Array<[string, string]> =
        m.public.mode === "own-prefix"
          ? m.public.routing.kind === "static"
            ? [[m.public.routing.nextHop, active("firewall")]]
            : []
          : m.public.declared
            ? [
                [m.public.declared.proxy, active("proxy")],
                [m.public.declared.nat, active("firewall")],
              ]
            : [];
      const ips = moved.map(([ip]) => ip);
      const hosts = world.hosts.filter((h) => h.role === "firewall" || h.role === "proxy").map((h) => h.name);
      const routes = Object.fromEntries(moved);
      state = { token, netcup: { hosts, ips, minIntervalSeconds: NETCUP_REROUTE_MIN_INTERVAL_S, routes } };
    }
    const stateFile = join(this.twin.dir, "provider-state.json");
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    const record = join(this.twin.dir, "api-calls.jsonl");
    writeFileSync(record, "");
    const { cert, key } = this.twin.tls;
    const api = await startUnit(this.twin.machine("internet"), {
      name: "provider-api",
      argv: [
        "node",
        "--import",
        "tsx",
        join(__dirname, "provider-api.ts"),
        ...["--state", stateFile, "--cert", cert, "--key", key, "--listen", world.apiAddress, "--record", record],
      ],
      readyLine: "ready",
    });
    this.api = api.process;
    let buffer = "";
    api.process.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as Omit<ProviderEffect, "at">;
        this.effects.push({ at: Date.now(), ...e });
        this.apply(e).catch((error: unknown) => this.twin.log(`provider effect ${line} failed: ${String(error)}`));
      }
    });
  }

  private async apply(e: Omit<ProviderEffect, "at">): Promise<void> {
    if (e.effect === "route") this.route(e.ip!, e.host!);
    else if (e.effect === "aliases") {
      this.aliases.set(e.host!, e.ips!);
      this.fabricRoutes();
    } else await this.twin.crash(e.host!, "fenced");
  }

  /** The provider routes `ip` (a failover/floating IP or the static next hop, and the prefix behind it) to `host`'s uplink. */
  route(ip: string, host: string): void {
    const h = this.twin.world.hosts.find((x) => x.name === host);
    if (!h) throw new Error(`${host} is not a host of ${this.twin.model.name}`);
    this.routed.set(ip, host);
    const via = ["via", h.uplink.address, "dev", this.twin.world.provider.kind === "lan" ? "lan" : "pub", "onlink"];
    ipIn(this.ns, "route", "replace", `${ip}/32`, ...via);
    const pub = this.twin.model.public;
    if (pub.mode === "own-prefix" && pub.routing.kind === "static" && pub.routing.nextHop === ip)
      ipIn(this.ns, "route", "replace", pub.prefix, ...via);
  }

  /**
   * Hetzner's private network: every attachment IP and alias IP goes to its
   * server (the server's link that holds it answers ARP); anything else in
   * the network's range is dropped; 0.0.0.0/0 goes to the server that holds
   * the route's gateway as alias IP, delivered to its private NIC itself (the
   * IPVLAN parent: Hetzner forwards to the server, not to an address), which a
   * permanent neighbour entry of a next hop that exists only here arranges.
   */
  fabricRoutes(): void {
    const world = this.twin.world;
    if (world.provider.kind !== "hcloud" || this.stopped) return;
    const hnet = this.twin.machine("hnet").ns;
    const table = execFileSync("ip", ["-n", hnet, "-4", "route", "show"], { encoding: "utf8" });
    const wanted = new Map<string, ReturnType<ProviderContext["runningHosts"]>[number]>();
    for (const h of this.twin.runningHosts()) {
      wanted.set(h.attachment!, h);
      for (const a of this.aliases.get(h.name) ?? []) wanted.set(a, h);
    }
    for (const line of table.split("\n").filter(Boolean)) {
      const dest = line.split(" ")[0];
      if (/^\d+\.\d+\.\d+\.\d+$/.test(dest) && !wanted.has(dest)) quietly(["ip", "-n", hnet, "route", "del", `${dest}/32`]);
    }
    quietly(["ip", "-n", hnet, "route", "replace", "blackhole", world.provider.network]);
    for (const [address, h] of wanted) quietly(["ip", "-n", hnet, "route", "replace", `${address}/32`, "dev", `s${h.index}`]);
    const holder = wanted.get(hcloudRouteGateway(this.twin.model));
    if (!holder) {
      quietly(["ip", "-n", hnet, "route", "del", "default"]);
      return;
    }
    const hop = `169.254.0.${holder.index + 1}`;
    const mac = /link\/ether (\S+)/.exec(
      execFileSync("ip", ["-n", holder.machine.ns, "-o", "link", "show", holder.internalNic], { encoding: "utf8" }),
    )?.[1];
    if (!mac) return;
    quietly(["ip", "-n", hnet, "neigh", "replace", hop, "lladdr", mac, "dev", `s${holder.index}`, "nud", "permanent"]);
    quietly(["ip", "-n", hnet, "route", "replace", "default", "via", hop, "dev", `s${holder.index}`, "onlink"]);
  }

  /**
   * The provider's routers as BGP peers of the firewalls, one BIRD each,
   * with the passwords the firewalls' files carry. The first peer is the
   * provider's edge that carries the site's traffic (the `provider` machine);
   * every further peer is a router of its own on the LAN (`bgp-<peer>`).
   */
  private async startBgpPeers(): Promise<void> {
    const pub = this.twin.model.public;
    if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") return;
    const fws = this.twin.world.hosts.filter((h) => h.role === "firewall");
    for (const [i, peer] of pub.routing.peers.entries()) {
      const name = this.bgpPeerMachine(peer.name);
      if (i > 0) {
        const m = this.twin.addOutsideMachine(name);
        sysctlIn(m.ns, "net.ipv6.conf.all.disable_ipv6=1");
        veth(m.ns, "eth0", this.ns, `b${i}`);
        ipIn(this.ns, "link", "set", `b${i}`, "master", "lan", "up");
        ipIn(m.ns, "addr", "add", `${peer.address}/24`, "dev", "eth0");
        ipIn(m.ns, "link", "set", "eth0", "up");
      }
      const lines = [
        `router id ${peer.address};`,
        "log stderr { info, remote, warning, error, auth, fatal, bug };",
        "protocol device { }",
        "# The provider installs what its customers announce.",
        "protocol kernel { ipv4 { import none; export all; }; }",
      ];
      for (const fw of fws) {
        const block =
          (this.twin.file(fw.name, "/etc/bird/bird.conf") ?? "")
            .split(/\nprotocol bgp /)
            .find((b) => b.includes(`neighbor ${peer.address} `)) ?? "";
        const password = /password "([^"]*)";/.exec(block)?.[1];
        lines.push(
          `protocol bgp ${fw.name.replace(/-/g, "_")} {`,
          `\tlocal ${peer.address} as ${peer.asn};`,
          `\tneighbor ${fw.uplink.address} as ${pub.routing.localAsn};`,
          ...(password ? [`\tpassword "${password}";`] : []),
          "\thold time 9;",
          "\tkeepalive time 3;",
          "\tipv4 { import all; export none; };",
          "}",
        );
      }
      const conf = join(this.twin.dir, `${name}-bird.conf`);
      writeFileSync(conf, lines.join("\n") + "\n");
      must(["bird", "-p", "-c", conf]);
      await startUnit(this.twin.machine(name), {
        name: "bird",
        prepare: ["mkdir -p /run/bird"],
        argv: ["/usr/sbin/bird", "-f", "-c", conf, "-s", "/run/bird/bird.ctl"],
      });
    }
  }

  /** The machine of a BGP peer of the site (the provider's edge routers). */
  bgpPeerMachine(peerName: string): string {
    const pub = this.twin.model.public;
    if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") throw new Error(`${this.twin.model.name} has no BGP peers`);
    return pub.routing.peers.findIndex((p) => p.name === peerName) === 0 ? "provider" : `bgp-${peerName}`;
  }

  /** Stops the API stand-in; no more effects are applied. */
  stop(): void {
    this.stopped = true;
    this.api?.kill("SIGKILL");
  }
}
