/**
 * The site twin: boots a whole location from the files its stack installs
 * (`plan --files` output, byte for byte), each host in its own machine
 * (`machine.ts`), cabled as its provider cables it, with the real daemons
 * (nftables, keepalived with the rendered failover script, HAProxy, BIRD,
 * OpenSSH) and stand-ins only where the real thing does not exist yet or
 * lies outside the site (workloads, the provider's edge and API, the
 * internet, the partner sites' tunnel ends).
 *
 * Cabling (nothing touches the machine's real interfaces):
 * - pre-provisioned: each host's `eth0` on the provider's LAN bridge in
 *   `provider`; its `eth1` on a `trunk` bridge in `switch`. This kernel has no
 *   802.1Q module, so a VLAN netdev of the rendered files (Kind=vlan, Id=N)
 *   becomes a link of that name to the `vlanN` bridge: one broadcast domain
 *   per VLAN id, as a VLAN-filtering switch keeps them.
 * - Hetzner Cloud: `eth0` a /32 behind 172.31.1.1 on-link; `ens10` into
 *   `hnet`, a stand-in of Hetzner's routed private network that delivers an
 *   address only to the server the API holds it for (its attachment IP and
 *   alias IPs). An IPVLAN netdev (no IPVLAN module here) becomes a macvlan
 *   child of `ens10`: the same one-link-per-segment view with its own MAC.
 * - around the site: `internet` (clients, the allowlist, the partners'
 *   tunnel ends, the provider API stand-in), `neighbour` (another customer's
 *   server on the provider LAN, which can address the site's private ranges
 *   through the firewall), and one `partner-<site>` per partner, joined to
 *   both firewalls by a link named like the tunnel interface, up only while
 *   the firewall's failover script has started the tunnel (`systemctl`
 *   stand-in, `init.ts`).
 */
import { ChildProcess, execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { performance } from "node:perf_hooks";
import { loadFootprint } from "../../lib/footprint/load";
import type { SiteModel } from "../../lib/model/model";
import type { Footprint } from "../../lib/footprint/schema";
import { planHostFiles, siteRenderOptions } from "../../lib/preview/files";
import { stackProviderEnv } from "../../lib/preview/run-stack";
import { writeRenderedFiles } from "../../lib/render";
import { hcloudAliasIps, hcloudNetworkName, failoverIpName } from "../../lib/render/keepalived";
import { partnerSites, zonePolicy, ZoneRule } from "../../lib/render/policy";
import type { HostFiles, ProxiedService, TunnelPeer } from "../../lib/render/types";
import { NetworkdConfig, readNetworkd } from "../../lib/twin/networkd";
import { ANY_PROTOCOL_PROBE_PORT, ProbeAction, ProbeOutcome } from "../../lib/twin/probes";
import { PROVIDER_API_NAMES, TRANSIT, TwinHost, TwinInputError, TwinWorld, twinWorld } from "../../lib/twin/world";
import { hcloudRouteGateway } from "../../components/provisioning";
import { EGRESS, DATABASE_PORTS } from "../../lib/render/policy";
import { INGRESS_PORTS } from "../../lib/footprint/site-files";
import { Machine, must, privateMountDir, quietly, reapStaleTwins } from "./machine";
import { SYSTEMCTL_STANDIN, UNITS, Unit, startUnit } from "./init";
import { TwinTls, makeTls } from "./tls";
import type { ProviderState } from "./provider-api";

const TSX = ["node", "--import", "tsx"];
const HERE = __dirname;
/** The Netcup stand-in's name inside the twin (the operator's command posts to it). */
const NETCUP_API = "api.netcup.twin";
/** Ports real daemons own on a host; a stand-in never takes them. */
const DAEMON_PORTS = new Set([22, 80, 179, 443, 8404]);

export interface TwinOptions {
  readonly location: string;
  /** Site files and footprint. @default the repository's sites/ */
  readonly sitesDir?: string;
  /** Boot from this `plan --files` folder instead of rendering (the twin copies it; the folder stays as it is). */
  readonly filesDir?: string;
  /** Progress lines. @default silent */
  readonly log?: (line: string) => void;
}

/** What runs in one host's machine. */
interface HostRuntime {
  readonly host: TwinHost;
  readonly index: number;
  machine: Machine;
  networkd?: NetworkdConfig;
  units: Map<string, ChildProcess>;
  unitDefinitions?: ReadonlyArray<Unit>;
  /** Twin-side link names of the host's links, for cutting: host link → [machine, port, bridge]. */
  ports: Map<string, { machine: string; port: string; bridge?: string }>;
  up: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

export class SiteTwin {
  readonly model: SiteModel;
  readonly sites: ReadonlyArray<SiteModel>;
  readonly world: TwinWorld;
  readonly policy: ReadonlyArray<ZoneRule>;
  readonly services: ReadonlyArray<ProxiedService>;
  readonly tunnelPeers: ReadonlyArray<TunnelPeer>;
  readonly dir: string;
  readonly filesDir: string;
  readonly machines = new Map<string, Machine>();
  readonly hosts = new Map<string, HostRuntime>();
  /** Calls the provider API stand-in received, in order. */
  readonly apiCalls: Array<{ at: number; method: string; url: string; status: number; body: string }> = [];
  /** Effects the provider applied (routes moved, alias IPs, power-offs), with their time (performance.now()). */
  readonly effects: Array<{ at: number; effect: string; ip?: string; host?: string; ips?: string[] }> = [];
  /** Namespace names start with it: `tw<pid base 36>`. */
  readonly prefix: string;
  private readonly releaseMounts: () => void;
  private readonly log: (line: string) => void;
  private destroyed = false;
  private readonly onExit = () => this.destroy();
  private readonly footprint: Footprint;
  private readonly providerEnv?: Readonly<Record<string, string>>;
  /** Current holder of each provider-routed address (failover and floating IPs, the static next hop). */
  readonly routed = new Map<string, string>();
  /** Alias IPs the Hetzner stand-in holds per server. */
  readonly aliases = new Map<string, string[]>();
  private apiProcess?: ChildProcess;
  private tls?: TwinTls;

  private constructor(options: TwinOptions) {
    this.log = options.log ?? (() => undefined);
    const { sites, footprint } = loadFootprint(options.sitesDir);
    const model = sites.find((s) => s.name === options.location);
    if (!model)
      throw new TwinInputError([`twin: location: ${options.location} has no site file (known: ${sites.map((s) => s.name).join(", ")})`]);
    this.model = model;
    this.sites = sites;
    this.footprint = footprint;
    this.providerEnv = stackProviderEnv(options.location);
    const render = siteRenderOptions(model, sites, footprint, this.providerEnv);
    this.services = render.services;
    this.tunnelPeers = render.tunnelPeers;
    this.policy = zonePolicy(model, partnerSites(model, sites, render.tunnelPeers), render.services, render.tunnelPeers);
    this.world = twinWorld(model, sites, render.tunnelPeers);
    this.dir = mkdtempSync(join(tmpdir(), `standort-twin-${model.name}-`));
    this.filesDir = join(this.dir, "files");
    this.prefix = `tw${process.pid.toString(36)}`;
    this.releaseMounts = privateMountDir(join(this.dir, "mnt"));
    process.once("exit", this.onExit);
    this.writeFiles(options.filesDir);
  }

  /** Boots the location; on any failure everything made so far is removed before the error is rethrown. */
  static async boot(options: TwinOptions): Promise<SiteTwin> {
    const reaped = reapStaleTwins(tmpdir());
    if (reaped.length > 0) options.log?.(`removed ${reaped.length} namespaces a killed twin left behind`);
    const twin = new SiteTwin(options);
    try {
      await twin.start();
      return twin;
    } catch (error) {
      twin.destroy();
      throw error;
    }
  }

  /** Files: the stack's render (placeholder secrets), or a given `--files` folder laid over it. */
  private writeFiles(given?: string): void {
    const rendered: HostFiles[] = planHostFiles(this.model, this.sites, this.footprint, this.providerEnv);
    writeRenderedFiles(this.filesDir, rendered, { clean: true });
    if (given) {
      for (const host of this.model.hosts) {
        const from = join(given, host.name);
        if (!existsSync(from))
          throw new TwinInputError([`twin: --files: ${from} does not exist (expected one folder per host, as plan --files writes)`]);
        const to = join(this.filesDir, host.name);
        rmSync(to, { recursive: true, force: true });
        cpSync(from, to, { recursive: true });
        // Modes as delivery installs them, by path; the content and the set of files are the given folder's.
        for (const f of rendered.find((r) => r.host === host.name)?.files ?? []) {
          const target = join(to, f.path);
          if (existsSync(target)) chmodSync(target, parseInt(f.mode, 8));
        }
      }
    }
    // Owners as delivery installs them (root:bird for bird.conf), where the group exists here.
    for (const { host, files } of rendered) {
      for (const f of files) {
        const target = join(this.filesDir, host, f.path);
        if (f.owner && existsSync(target)) quietly(["chown", f.owner, target]);
      }
    }
  }

  /** Reads one rendered file of a host (as the twin booted it). */
  file(host: string, path: string): string | undefined {
    const p = join(this.filesDir, host, path);
    return existsSync(p) ? readFileSync(p, "utf8") : undefined;
  }

  private ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  private machineFor(name: string, etcLayers: string[], binds: Array<{ source: string; target: string }> = []): Machine {
    const m = new Machine(name, this.ns(name), join(this.dir, "machines", name), join(this.dir, "mnt"), etcLayers, binds);
    this.machines.set(name, m);
    return m;
  }

  machine(name: string): Machine {
    const m = this.machines.get(name);
    if (!m) throw new Error(`the twin has no machine ${name}`);
    return m;
  }

  /** Twin-wide material: TLS (CA, one certificate for the API names and the stand-ins), an SSH host key, the systemctl stand-in. */
  private material(): void {
    this.tls = makeTls(join(this.dir, "tls"), [
      ...PROVIDER_API_NAMES,
      NETCUP_API,
      "*.example.com",
      "*.example.net",
      "*.standby.example.net",
    ]);
    const ssh = join(this.dir, "ssh");
    mkdirSync(ssh, { recursive: true });
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(ssh, "host_ed25519"), "-C", "standort-twin"]);
    const bin = join(this.dir, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "systemctl"), SYSTEMCTL_STANDIN, { mode: 0o755 });
  }

  /** `/etc` extras of a machine the provider's image would carry: name, resolver, the twin CA, the API names. */
  private extras(name: string): string {
    const etc = join(this.dir, "extra", name, "etc");
    mkdirSync(join(etc, "ssl", "certs"), { recursive: true });
    writeFileSync(join(etc, "hostname"), `${name}\n`);
    writeFileSync(
      join(etc, "hosts"),
      `127.0.0.1 localhost\n127.0.1.1 ${name}\n${this.world.apiAddress} ${[...PROVIDER_API_NAMES, NETCUP_API].join(" ")}\n`,
    );
    // No DNS server in the twin: a lookup fails at once, as an unknown name does on a real host.
    writeFileSync(join(etc, "resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
    cpSync(this.tls!.ca, join(etc, "ssl", "certs", "ca-certificates.crt"));
    return etc;
  }

  private async start(): Promise<void> {
    const t0 = performance.now();
    this.material();
    const outside = ["internet", "provider", this.world.provider.kind === "lan" ? "switch" : "hnet"];
    if (this.world.provider.kind === "lan") outside.push("neighbour");
    for (const p of this.world.partners) outside.push(`partner-${p.site}`);
    for (const name of outside) this.machineFor(name, [this.extras(name)]).create();
    this.world.hosts.forEach((host, index) => {
      this.hosts.set(host.name, { host, index, machine: this.hostMachine(host), units: new Map(), ports: new Map(), up: false });
    });
    await this.buildOutside();
    this.log(`outside machines ready (${Math.round(performance.now() - t0)} ms)`);
    // Hosts boot in parallel, a few at a time (two cores).
    const queue = [...this.hosts.keys()];
    const worker = async () => {
      for (let name = queue.shift(); name; name = queue.shift()) await this.bootHost(name);
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    this.log(`${this.hosts.size} hosts booted (${Math.round(performance.now() - t0)} ms)`);
  }

  private hostMachine(host: TwinHost): Machine {
    const binds = [{ source: join(this.dir, "bin", "systemctl"), target: "/usr/bin/systemctl" }];
    const move = this.providerEnv?.FAILOVER_MOVE_COMMAND;
    if (move && (host.role === "firewall" || host.role === "proxy")) {
      if (!/^\/usr\/local\/s?bin\/[A-Za-z0-9._-]+$/.test(move)) {
        throw new TwinInputError([
          `stacks/Pulumi.${this.model.name}.yaml: standort:providerEnv.FAILOVER_MOVE_COMMAND: the twin stands in for a command under /usr/local/sbin or /usr/local/bin, got ${move}`,
        ]);
      }
      const dir = join(this.dir, "move-command");
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, move.split("/").pop()!),
        [
          "#!/bin/sh",
          "# standort twin: stand-in for the operator's failover command. It asks the provider stand-in to route",
          "# $FAILOVER_ADDRESS to $SELF's server, as Netcup's SCP changeIPRouting routes a failover IP.",
          `exec curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' -d "{\\"ip\\":\\"$FAILOVER_ADDRESS\\",\\"host\\":\\"$SELF\\"}" https://${NETCUP_API}/twin/netcup/route`,
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      binds.push({ source: dir, target: dirname(move) });
    }
    return this.machineFor(host.name, [join(this.filesDir, host.name, "etc"), this.extras(host.name)], binds);
  }

  /** Creates a veth pair between two machines (`a:nameA` ↔ `b:nameB`). */
  private veth(a: string, nameA: string, b: string, nameB: string, options: { sameMac?: boolean } = {}): void {
    must(["ip", "link", "add", nameA, "netns", this.machine(a).ns, "type", "veth", "peer", "name", nameB, "netns", this.machine(b).ns]);
    if (options.sameMac) {
      // A layer-3 tunnel has no neighbours: both ends take one MAC and skip ARP, so frames are always for "us".
      const mac = `02:${[...Array(5)]
        .map(() =>
          Math.floor(Math.random() * 256)
            .toString(16)
            .padStart(2, "0"),
        )
        .join(":")}`;
      for (const [m, n] of [
        [a, nameA],
        [b, nameB],
      ]) {
        must(["ip", "-n", this.machine(m).ns, "link", "set", n, "address", mac, "arp", "off"]);
      }
    }
  }

  private ip(machine: string, ...args: string[]): void {
    must(["ip", "-n", this.machine(machine).ns, ...args]);
  }

  private sysctl(machine: string, ...settings: string[]): void {
    for (const s of settings) must(["ip", "netns", "exec", this.machine(machine).ns, "sysctl", "-q", "-w", s]);
  }

  /** The internet, the provider's edge, the LAN or Hetzner's networks, the neighbour and the partners. */
  private async buildOutside(): Promise<void> {
    const w = this.world;
    for (const name of this.machines.keys()) {
      if (!this.hosts.has(name)) this.sysctl(name, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
    }
    // internet <-> provider
    this.veth("internet", "eth0", "provider", "inet");
    this.ip("internet", "addr", "add", `${TRANSIT.internet}/${TRANSIT.prefixLength}`, "dev", "eth0");
    this.ip("internet", "link", "set", "eth0", "up");
    for (const a of [
      w.internetClient,
      w.apiAddress,
      ...w.allowlistClients,
      ...w.partners.flatMap((p) => (p.endpoint ? [p.endpoint] : [])),
    ]) {
      this.ip("internet", "addr", "add", `${a}/32`, "dev", "lo");
    }
    this.ip("internet", "route", "add", "default", "via", TRANSIT.provider);
    this.ip("provider", "addr", "add", `${TRANSIT.provider}/${TRANSIT.prefixLength}`, "dev", "inet");
    this.ip("provider", "link", "set", "inet", "up");
    this.ip("provider", "route", "add", "default", "via", TRANSIT.internet);
    this.sysctl("provider", "net.ipv4.ip_forward=1");
    if (w.provider.kind === "lan") {
      this.ip("provider", "link", "add", "lan", "type", "bridge");
      for (const g of w.provider.gateways) this.ip("provider", "addr", "add", `${g}/24`, "dev", "lan");
      this.ip("provider", "link", "set", "lan", "up");
      for (const vlan of ["trunk"]) {
        this.ip("switch", "link", "add", vlan, "type", "bridge");
        this.ip("switch", "link", "set", vlan, "up");
      }
      this.veth("neighbour", "eth0", "provider", "nb");
      this.ip("provider", "link", "set", "nb", "master", "lan", "up");
      this.ip("neighbour", "addr", "add", `${w.provider.neighbour}/24`, "dev", "eth0");
      this.ip("neighbour", "link", "set", "eth0", "up");
      this.ip("neighbour", "route", "add", "default", "via", w.provider.gateways[0]);
      this.ip("neighbour", "route", "add", this.model.supernet, "via", this.siteEntry());
    } else {
      this.ip("provider", "link", "add", "pub", "type", "bridge");
      this.ip("provider", "addr", "add", `${w.provider.publicGateway}/32`, "dev", "pub");
      this.ip("provider", "link", "set", "pub", "up");
      this.ip("hnet", "addr", "add", `${w.provider.privateGateway}/32`, "dev", "lo");
      this.sysctl("hnet", "net.ipv4.ip_forward=1");
    }
    for (const p of w.partners) {
      const m = `partner-${p.site}`;
      for (const a of [p.addresses.data, p.addresses.app]) this.ip(m, "addr", "add", `${a}/32`, "dev", "lo");
      this.sysctl(m, "net.ipv4.conf.all.ignore_routes_with_linkdown=1");
    }
    // Stand-ins outside: servers on the internet (what egress reaches), the partners' replication ports.
    const internet = this.machine("internet");
    const { cert, key } = this.tls!;
    await startUnit(internet, this.standin("internet", { tcp: EGRESS.tcp, udp: EGRESS.udp, bind: w.internetClient }));
    for (const p of w.partners) {
      await startUnit(this.machine(`partner-${p.site}`), this.standin(`partner-${p.site}`, { tcp: [22, ...DATABASE_PORTS] }));
    }
    await this.startProviderApi(cert, key);
    this.initialRoutes();
    if (this.model.public.mode === "own-prefix" && this.model.public.routing.kind === "bgp") await this.startProviderBird();
  }

  /** Where the provider hands the site's traffic: the static next hop, the active firewall (BGP) or the NAT failover IP. */
  private siteEntry(): string {
    const pub = this.model.public;
    if (pub.mode === "own-prefix" && pub.routing.kind === "static") return pub.routing.nextHop;
    if (pub.mode === "provider-failover-ips" && pub.declared) return pub.declared.nat;
    const fw = this.model.pairs.find((p) => p.role === "firewall")!.active;
    return this.world.hosts.find((h) => h.name === fw)!.uplink.address;
  }

  private standin(
    host: string,
    ports: { tcp?: ReadonlyArray<number>; udp?: ReadonlyArray<number>; tls?: ReadonlyArray<string>; bind?: string },
    name = "standin",
  ): Unit {
    return {
      name,
      argv: [
        ...TSX,
        join(HERE, "standin.ts"),
        "--host",
        host,
        ...(ports.tcp?.length ? ["--tcp", ports.tcp.join(",")] : []),
        ...(ports.udp?.length ? ["--udp", ports.udp.join(",")] : []),
        ...(ports.tls?.length ? ["--tls", ports.tls.join(","), "--cert", this.tls!.cert, "--key", this.tls!.key] : []),
        ...(ports.bind ? ["--bind", ports.bind] : []),
      ],
      readyLine: "ready",
    };
  }

  /** The provider API stand-in, in `internet`, with the site's provider state. */
  private async startProviderApi(cert: string, key: string): Promise<void> {
    const m = this.model;
    const token =
      /='([^']*)'/.exec(
        this.file(m.pairs[0].active, "/etc/standort/provider.env")
          ?.split("\n")
          .find((l) => /TOKEN=/.test(l)) ?? "",
      )?.[1] ?? "";
    const hostsByRole = (role: string) => this.world.hosts.filter((h) => h.role === role).map((h) => h.name);
    let state: ProviderState = { token };
    if (m.provider.kind === "hcloud") {
      const servers = this.world.hosts.map((h, i) => ({
        id: 1000 + i,
        name: h.name,
        ip: h.attachment!,
        aliasIps: hcloudAliasIps(
          m,
          h.name,
          m.pairs.some((p) => p.active === h.name),
        ),
      }));
      const fips = this.world.failoverIps!;
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
    } else if (m.provider.name === "ionos") {
      const env = this.providerEnv ?? {};
      const nics: Record<string, string> = {};
      for (const h of this.world.hosts) {
        const id = env[`IONOS_NIC_ID_${h.name.toUpperCase().replace(/-/g, "_")}`];
        if (id) nics[id] = h.name;
      }
      state = { token, ionos: { datacenter: env.IONOS_DATACENTER_ID ?? "", lan: env.IONOS_LAN_ID ?? "", nics } };
    } else {
      const ips = m.public.mode === "own-prefix" && m.public.routing.kind === "static" ? [m.public.routing.nextHop] : [];
      state = { token, netcup: { hosts: [...hostsByRole("firewall"), ...hostsByRole("proxy")], ips } };
    }
    const stateFile = join(this.dir, "provider-state.json");
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    const record = join(this.dir, "api-calls.jsonl");
    writeFileSync(record, "");
    const internet = this.machine("internet");
    const api = await startUnit(internet, {
      name: "provider-api",
      argv: [
        ...TSX,
        join(HERE, "provider-api.ts"),
        "--state",
        stateFile,
        "--cert",
        cert,
        "--key",
        key,
        "--listen",
        this.world.apiAddress,
        "--record",
        record,
      ],
      readyLine: "ready",
    });
    this.apiProcess = api.process;
    let buffer = "";
    api.process.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as { effect: string; ip?: string; host?: string; ips?: string[] };
        this.effects.push({ at: performance.now(), ...e });
        this.applyEffect(e).catch((error: unknown) => this.log(`provider effect ${line} failed: ${String(error)}`));
      }
    });
  }

  /** The provider API's record of calls so far. */
  readApiCalls(): Array<{ at: number; method: string; url: string; status: number; body: string }> {
    const text = existsSync(join(this.dir, "api-calls.jsonl")) ? readFileSync(join(this.dir, "api-calls.jsonl"), "utf8") : "";
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { at: number; method: string; url: string; status: number; body: string });
  }

  /** Routes the provider starts with: each failover address where the site file's active member is (the operator's order). */
  private initialRoutes(): void {
    const m = this.model;
    const active = (role: string) => m.pairs.find((p) => p.role === role)!.active;
    if (m.public.mode === "own-prefix" && m.public.routing.kind === "static") this.route(m.public.routing.nextHop, active("firewall"));
    if (m.public.mode === "provider-failover-ips") {
      const ips = m.public.declared ?? this.world.failoverIps;
      if (ips) {
        this.route(ips.proxy, active("proxy"));
        this.route(ips.nat, active("firewall"));
      }
    }
  }

  /** The provider routes `ip` (a failover/floating IP or the static next hop, and the prefix behind it) to `host`'s uplink. */
  private route(ip: string, host: string): void {
    const h = this.world.hosts.find((x) => x.name === host);
    if (!h) throw new Error(`${host} is not a host of ${this.model.name}`);
    this.routed.set(ip, host);
    const dev = this.world.provider.kind === "lan" ? "lan" : "pub";
    const via = ["via", h.uplink.address, "dev", dev, "onlink"];
    this.ip("provider", "route", "replace", `${ip}/32`, ...via);
    const pub = this.model.public;
    if (pub.mode === "own-prefix" && pub.routing.kind === "static" && pub.routing.nextHop === ip)
      this.ip("provider", "route", "replace", pub.prefix, ...via);
  }

  private async applyEffect(e: { effect: string; ip?: string; host?: string; ips?: string[] }): Promise<void> {
    if (e.effect === "route") this.route(e.ip!, e.host!);
    else if (e.effect === "aliases") {
      this.aliases.set(e.host!, e.ips!);
      this.hcloudFabricRoutes();
    } else if (e.effect === "poweroff") await this.crash(e.host!, "fenced");
  }

  /**
   * Hetzner's private network: every attachment IP and alias IP goes to its
   * server (the server's link that holds it answers ARP); anything else in
   * the network's range is dropped; 0.0.0.0/0 goes to the server that holds
   * the route's gateway as alias IP, delivered to its private NIC itself (the
   * IPVLAN parent: Hetzner forwards to the server, not to an address), which a
   * permanent neighbour entry of a next hop that exists only here arranges.
   */
  hcloudFabricRoutes(): void {
    if (this.world.provider.kind !== "hcloud" || this.destroyed) return;
    const hnet = this.machine("hnet").ns;
    const table = execFileSync("ip", ["-n", hnet, "-4", "route", "show"], { encoding: "utf8" });
    const wanted = new Map<string, HostRuntime>();
    for (const rt of this.hosts.values()) {
      if (!rt.up) continue;
      wanted.set(rt.host.attachment!, rt);
      for (const a of this.aliases.get(rt.host.name) ?? []) wanted.set(a, rt);
    }
    for (const line of table.split("\n").filter(Boolean)) {
      const dest = line.split(" ")[0];
      if (/^\d+\.\d+\.\d+\.\d+$/.test(dest) && !wanted.has(dest)) quietly(["ip", "-n", hnet, "route", "del", `${dest}/32`]);
    }
    quietly(["ip", "-n", hnet, "route", "replace", "blackhole", this.world.provider.network]);
    for (const [address, rt] of wanted) quietly(["ip", "-n", hnet, "route", "replace", `${address}/32`, "dev", `s${rt.index}`]);
    const gateway = hcloudRouteGateway(this.model);
    const holder = wanted.get(gateway);
    if (!holder) {
      quietly(["ip", "-n", hnet, "route", "del", "default"]);
      return;
    }
    const hop = `169.254.0.${holder.index + 1}`;
    const mac = execFileSync("ip", ["-n", holder.machine.ns, "-o", "link", "show", holder.host.internalNic], { encoding: "utf8" }).match(
      /link\/ether (\S+)/,
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
  private async startProviderBird(): Promise<void> {
    const pub = this.model.public;
    if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") return;
    const fws = this.world.hosts.filter((h) => h.role === "firewall");
    for (const [i, peer] of pub.routing.peers.entries()) {
      const machine = i === 0 ? "provider" : `bgp-${peer.name}`;
      if (i > 0) {
        this.machineFor(machine, [this.extras(machine)]).create();
        this.sysctl(machine, "net.ipv6.conf.all.disable_ipv6=1");
        this.veth(machine, "eth0", "provider", `b${i}`);
        this.ip("provider", "link", "set", `b${i}`, "master", "lan", "up");
        this.ip(machine, "addr", "add", `${peer.address}/24`, "dev", "eth0");
        this.ip(machine, "link", "set", "eth0", "up");
      }
      const lines = [
        `router id ${peer.address};`,
        "log stderr { info, remote, warning, error, auth, fatal, bug };",
        "protocol device { }",
        "# The provider installs what its customers announce.",
        "protocol kernel { ipv4 { import none; export all; }; }",
      ];
      for (const fw of fws) {
        const conf = this.file(fw.name, "/etc/bird/bird.conf") ?? "";
        const block = conf.split(/\nprotocol bgp /).find((b) => b.includes(`neighbor ${peer.address} `)) ?? "";
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
      const conf = join(this.dir, `${machine}-bird.conf`);
      writeFileSync(conf, lines.join("\n") + "\n");
      must(["bird", "-p", "-c", conf]);
      await startUnit(this.machine(machine), {
        name: "bird",
        prepare: ["mkdir -p /run/bird"],
        argv: ["/usr/sbin/bird", "-f", "-c", conf, "-s", "/run/bird/bird.ctl"],
      });
    }
  }

  /** The machine of a BGP peer of the site (the provider's edge routers). */
  bgpPeerMachine(peerName: string): string {
    const pub = this.model.public;
    if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") throw new Error(`${this.model.name} has no BGP peers`);
    return pub.routing.peers.findIndex((p) => p.name === peerName) === 0 ? "provider" : `bgp-${peerName}`;
  }

  /** Reads a host's networkd files (the strict reader refuses what it does not implement). */
  private readNetworkd(host: string): NetworkdConfig {
    const dir = join(this.filesDir, host, "etc", "systemd", "network");
    const files: Record<string, string> = {};
    for (const f of filesUnder(dir)) files[f] = readFileSync(join(dir, f), "utf8");
    return readNetworkd(files);
  }

  /** Cables a host (its machine must exist): the uplink and the internal NIC, as the provider does. */
  private cable(rt: HostRuntime): void {
    const name = rt.host.name;
    const i = rt.index;
    rt.ports.clear();
    if (this.world.provider.kind === "lan") {
      this.veth(name, "eth0", "provider", `u${i}`);
      this.ip("provider", "link", "set", `u${i}`, "master", "lan", "up");
      rt.ports.set("eth0", { machine: "provider", port: `u${i}`, bridge: "lan" });
      this.veth(name, rt.host.internalNic, "switch", `t${i}`);
      this.ip("switch", "link", "set", `t${i}`, "master", "trunk", "up");
      rt.ports.set(rt.host.internalNic, { machine: "switch", port: `t${i}`, bridge: "trunk" });
    } else {
      this.veth(name, "eth0", "provider", `u${i}`);
      this.ip("provider", "link", "set", `u${i}`, "master", "pub", "up");
      this.ip("provider", "route", "replace", `${rt.host.uplink.address}/32`, "dev", "pub");
      rt.ports.set("eth0", { machine: "provider", port: `u${i}`, bridge: "pub" });
      this.veth(name, rt.host.internalNic, "hnet", `s${i}`);
      this.ip("hnet", "link", "set", `s${i}`, "up");
      rt.ports.set(rt.host.internalNic, { machine: "hnet", port: `s${i}` });
    }
    if (rt.host.role === "firewall") {
      const member = this.model.pairs.find((p) => p.role === "firewall")!.members.indexOf(name) + 1;
      for (const p of this.world.partners) {
        this.veth(name, p.tunnel, `partner-${p.site}`, `f${member}`, { sameMac: true });
        const pm = `partner-${p.site}`;
        this.ip(pm, "link", "set", `f${member}`, "up");
        this.ip(pm, "route", "replace", this.model.supernet, "dev", `f${member}`, "metric", String(member * 10));
      }
    }
  }

  /** The provider's image: the uplink configured, IPv6 off (the twin runs IPv4 only). */
  private async providerImage(rt: HostRuntime): Promise<void> {
    const m = rt.machine;
    const u = rt.host.uplink;
    const sh = [
      "sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
      "ip link set eth0 up",
      `ip addr add ${u.address}/${u.prefixLength} dev eth0`,
      `ip route add default via ${u.gateway} dev eth0${u.onLink ? " onlink" : ""}`,
    ];
    await m.run(["sh", "-c", sh.join(" && ")]);
  }

  /** Applies the host's networkd files: links, addresses, DHCP (Hetzner's), routes, rules. */
  private async applyNetworkd(rt: HostRuntime): Promise<void> {
    const cfg = this.readNetworkd(rt.host.name);
    rt.networkd = cfg;
    const name = rt.host.name;
    const m = rt.machine;
    const exists = new Set(["eth0", rt.host.internalNic]);
    for (const d of cfg.netdevs) {
      const parent = cfg.networks.find((n) => n.vlans.includes(d.name) || n.ipvlans.includes(d.name))!;
      const parentLink = parent.match.find((x) => exists.has(x));
      if (!parentLink) throw new Error(`${name}: ${parent.file}: matches no link of the host (${[...exists].join(", ")})`);
      if (d.kind === "vlan") {
        if (this.world.provider.kind !== "lan")
          throw new Error(`${name}: ${d.file}: a VLAN on ${parentLink}, but this provider's network carries no VLANs`);
        const bridge = `vlan${d.vlanId}`;
        const sw = this.machine("switch").ns;
        if (!execFileSync("ip", ["-n", sw, "-o", "link", "show"], { encoding: "utf8" }).includes(` ${bridge}:`)) {
          this.ip("switch", "link", "add", bridge, "type", "bridge");
          this.ip("switch", "link", "set", bridge, "up");
        }
        const port = `h${rt.index}v${d.vlanId}`;
        this.veth(name, d.name, "switch", port);
        this.ip("switch", "link", "set", port, "master", bridge, "up");
        rt.ports.set(d.name, { machine: "switch", port, bridge });
      } else {
        await m.run(["ip", "link", "add", "link", parentLink, "name", d.name, "type", "macvlan", "mode", "bridge"]);
      }
      if (d.mtu) await m.run(["ip", "link", "set", d.name, "mtu", String(d.mtu)]);
      exists.add(d.name);
    }
    const seen = new Map<string, string>();
    const cmds: string[] = [];
    const later: string[] = [];
    for (const n of cfg.networks) {
      const links = n.match.filter((x) => exists.has(x));
      if (links.length === 0) throw new Error(`${name}: ${n.file}: [Match] Name=${n.match.join(" ")} matches no link of the host`);
      for (const link of links) {
        const other = seen.get(link);
        if (other) throw new Error(`${name}: ${n.file}: ${link} is already configured by ${other}`);
        seen.set(link, n.file);
        cmds.push(`ip link set ${link} up`);
        for (const a of n.addresses) cmds.push(`ip addr add ${a} dev ${link}`);
        if (n.dhcp) throw new Error(`${name}: ${n.file}: DHCP=ipv4: the twin's networks hand out no leases (render the addresses)`);
        if (n.mtu !== undefined) cmds.push(`ip link set ${link} mtu ${n.mtu}`);
        for (const r of n.routes) {
          later.push(
            `ip route add ${r.destination === "0.0.0.0/0" ? "default" : r.destination}${r.gateway ? ` via ${r.gateway}` : ""} dev ${link}${r.onLink ? " onlink" : ""}${r.table !== "main" ? ` table ${r.table}` : ""}${r.metric !== undefined ? ` metric ${r.metric}` : ""}`,
          );
        }
        for (const r of n.rules) {
          later.push(
            `ip rule add${r.from ? ` from ${r.from}` : ""}${r.to ? ` to ${r.to}` : ""} table ${r.table}${r.priority !== undefined ? ` priority ${r.priority}` : ""}${r.suppressPrefixLength !== undefined ? ` suppress_prefixlength ${r.suppressPrefixLength}` : ""}`,
          );
        }
      }
    }
    const script = [...cmds, ...later].join(" && ");
    if (script) await m.run(["sh", "-c", script]);
  }

  /** Boots one host: machine, cables, the provider's image, then the rendered files in boot order, then its daemons. */
  async bootHost(name: string): Promise<void> {
    const rt = this.hosts.get(name)!;
    const t0 = performance.now();
    rt.machine.create();
    this.cable(rt);
    await this.providerImage(rt);
    const m = rt.machine;
    if (this.file(name, "/etc/sysctl.d/90-standort.conf") !== undefined)
      await m.run(["sysctl", "-q", "-p", "/etc/sysctl.d/90-standort.conf"]);
    await this.applyNetworkd(rt);
    if (this.file(name, "/etc/nftables.conf") !== undefined) await m.run(["nft", "-f", "/etc/nftables.conf"]);
    const units: Unit[] = [UNITS.syslog(), UNITS.ssh(this.sshConfig(name))];
    units.push(...this.standins(rt));
    if (this.file(name, "/etc/haproxy/haproxy.cfg") !== undefined) units.push(UNITS.haproxy());
    if (this.file(name, "/etc/bird/bird.conf") !== undefined) units.push(UNITS.bird());
    if (this.file(name, "/etc/keepalived/keepalived.conf") !== undefined) units.push(UNITS.keepalived());
    rt.unitDefinitions = units;
    for (const unit of units) {
      const started = await startUnit(m, unit);
      rt.units.set(unit.name, started.process);
    }
    rt.up = true;
    this.hcloudFabricRoutes();
    this.log(`${name} booted (${Math.round(performance.now() - t0)} ms)`);
  }

  /** sshd's configuration for a host: the twin's host key, every address, the host's name in the banner. */
  private sshConfig(name: string): string {
    const path = join(this.dir, "ssh", `${name}.conf`);
    writeFileSync(
      path,
      [
        "Port 22",
        "ListenAddress 0.0.0.0",
        `HostKey ${join(this.dir, "ssh", "host_ed25519")}`,
        "PidFile /run/sshd.pid",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        `AuthorizedKeysFile ${join(this.dir, "ssh", "authorized_keys")}`,
        // The banner names the host, so a probe knows whose sshd answered.
        `VersionAddendum ${name}`,
        "",
      ].join("\n"),
    );
    return path;
  }

  /** Stand-ins for workloads: the ports the zone policy sends to this role that no real daemon here owns. */
  private standins(rt: HostRuntime): Unit[] {
    const role = rt.host.role;
    const rules = this.policy.filter((r) => r.targets.includes(role));
    const tcp = new Set<number>();
    const udp = new Set<number>();
    for (const r of rules) {
      if (r.protocol === "tcp") r.ports.forEach((p) => tcp.add(p));
      if (r.protocol === "udp") r.ports.forEach((p) => udp.add(p));
      if (r.protocol === "any") tcp.add(ANY_PROTOCOL_PROBE_PORT);
    }
    const units: Unit[] = [];
    if (role === "storage" && tcp.delete(2049)) {
      // The NFS server (nfs-server.service) until the storage issue brings the real one.
      units.push(this.standin(rt.host.name, { tcp: [2049] }, "nfs-server"));
    }
    const tls: string[] = [];
    if (role === "virtualization") {
      for (const [mode, port] of [
        ["rw", INGRESS_PORTS.readWrite],
        ["ro", INGRESS_PORTS.readOnly],
      ] as const) {
        if (tcp.delete(port)) tls.push(`${port}:${mode}`);
      }
    }
    const plain = [...tcp].filter((p) => !DAEMON_PORTS.has(p)).sort((a, b) => a - b);
    const datagrams = [...udp].sort((a, b) => a - b);
    if (plain.length + datagrams.length + tls.length > 0) units.push(this.standin(rt.host.name, { tcp: plain, udp: datagrams, tls }));
    return units;
  }

  /**
   * The host dies: every process killed at once (SIGSTOP, SIGKILL), its
   * namespaces and links gone, as a power cut or a fence leaves it.
   */
  async crash(name: string, why = "crash"): Promise<void> {
    const rt = this.hosts.get(name);
    if (!rt || !rt.up) return;
    rt.up = false;
    rt.machine.destroy();
    rt.units.clear();
    // The kernel removes a deleted namespace's links in the background: take the far ends away now, so the
    // host can be cabled again at once when it returns.
    for (const p of rt.ports.values()) {
      quietly(["ip", "-n", this.machine(p.machine).ns, "link", "del", p.port]);
      // A cut of a routed port lives at the far side: the new cable must not inherit it.
      if (!p.bridge) quietly(["ip", "netns", "exec", this.machine(p.machine).ns, "nft", "delete", "table", "inet", `twin_cut_${p.port}`]);
    }
    if (rt.host.role === "firewall") {
      const member = this.model.pairs.find((p) => p.role === "firewall")!.members.indexOf(name) + 1;
      for (const p of this.world.partners) quietly(["ip", "-n", this.machine(`partner-${p.site}`).ns, "link", "del", `f${member}`]);
    }
    this.log(`${name} down (${why})`);
    this.hcloudFabricRoutes();
    await sleep(0);
  }

  /** Boots a crashed host again from its files (a reboot). */
  async restore(name: string): Promise<void> {
    const rt = this.hosts.get(name)!;
    if (rt.up) return;
    rt.machine = this.hostMachine(rt.host);
    await this.bootHost(name);
  }

  /** Kills one unit of a running host (its daemon dies; `systemctl is-active` then says inactive). */
  async stopUnit(name: string, unit: string): Promise<void> {
    const rt = this.hosts.get(name);
    const process = rt?.units.get(unit);
    if (!rt?.up || !process) throw new Error(`${name} runs no unit ${unit}`);
    const exited = new Promise<void>((r) => process.once("exit", () => r()));
    // The unit's pid and whatever it forked (HAProxy's worker, keepalived's VRRP child) die together.
    await rt.machine.exec(["sh", "-c", `pkill -KILL -P ${process.pid}; kill -KILL ${process.pid}`]);
    await Promise.race([exited, sleep(5_000)]);
    rt.units.delete(unit);
  }

  /** Starts a unit of a running host again, as the init first started it. */
  async startUnit(name: string, unit: string): Promise<void> {
    const rt = this.hosts.get(name);
    const definition = rt?.unitDefinitions?.find((u) => u.name === unit);
    if (!rt?.up || !definition) throw new Error(`${name} has no unit ${unit}`);
    rt.units.set(unit, (await startUnit(rt.machine, definition)).process);
  }

  /** The lines a host logged to syslog (the failover script's `logger` lines among them). */
  syslog(name: string): string[] {
    return this.hosts.get(name)?.machine.lines("syslog") ?? [];
  }

  /** True while the host runs. */
  isUp(name: string): boolean {
    return this.hosts.get(name)?.up ?? false;
  }

  /** The host-side links of a host that can be cut, by name (`eth0`, `eth1`, each segment link). */
  links(name: string): string[] {
    return [...(this.hosts.get(name)?.ports.keys() ?? [])];
  }

  /**
   * Cuts (or heals) one link of a host at the far side: the port leaves its
   * bridge but keeps its carrier, so the host sees a healthy link that no
   * longer carries frames (a failed switch port, VLAN or provider path).
   */
  cut(name: string, link: string, cut: boolean): void {
    const rt = this.hosts.get(name)!;
    const p = rt.ports.get(link);
    if (!p) throw new Error(`${name} has no link ${link} (links: ${[...rt.ports.keys()].join(", ")})`);
    const ns = this.machine(p.machine).ns;
    if (p.bridge) {
      // A host that went down meanwhile took its port with it: it comes back cabled whole.
      if (!rt.up) return;
      must(["ip", "-n", ns, "link", "set", p.port, ...(cut ? ["nomaster"] : ["master", p.bridge])]);
      return;
    }
    // A routed port (Hetzner's network) has no bridge to leave: its frames are dropped at the far side instead.
    const table = `twin_cut_${p.port}`;
    quietly(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table]);
    if (cut) {
      must(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        `table inet ${table} {\n\tchain f { type filter hook forward priority -10; iifname "${p.port}" drop; oifname "${p.port}" drop; }\n\tchain i { type filter hook input priority -10; iifname "${p.port}" drop; }\n\tchain o { type filter hook output priority -10; oifname "${p.port}" drop; }\n}\n`,
      );
    }
  }

  /** Runs probes from one machine (all at once); outcomes in input order. */
  async probe(machine: string, actions: ReadonlyArray<ProbeAction>): Promise<ProbeOutcome[]> {
    if (actions.length === 0) return [];
    const rt = this.hosts.get(machine);
    if (rt && !rt.up) return actions.map((a) => ({ id: a.id, result: "error", answer: `${machine} is down`, ms: 0 }));
    const longest = Math.max(...actions.map((a) => a.timeoutMs));
    const r = await this.machine(machine).exec([...TSX, join(HERE, "probe-run.ts")], {
      input: JSON.stringify(actions),
      timeoutMs: longest + 15_000,
    });
    if (r.code !== 0) throw new Error(`probes from ${machine} failed (exit ${r.code}): ${r.stderr.trim()}`);
    const outcomes = JSON.parse(r.stdout) as ProbeOutcome[];
    return actions.map((a) => outcomes.find((o) => o.id === a.id)!);
  }

  /** Which hosts hold `address` right now (on any interface). */
  async holders(address: string, among?: ReadonlyArray<string>): Promise<string[]> {
    const names = among ?? [...this.hosts.keys()];
    const held = await Promise.all(
      names.map(async (n) => {
        const rt = this.hosts.get(n);
        if (!rt?.up) return false;
        const r = await rt.machine.exec(["ip", "-4", "-o", "addr", "show"], { timeoutMs: 5_000 });
        return r.stdout.includes(` ${address}/`);
      }),
    );
    return names.filter((_n, i) => held[i]);
  }

  /** A relative path of the twin folder (for messages). */
  where(path: string): string {
    return relative(this.dir, path);
  }

  /** Removes every machine, mount and file of the twin. Synchronous and idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener("exit", this.onExit);
    this.apiProcess?.kill("SIGKILL");
    const all = [...this.machines.values(), ...[...this.hosts.values()].map((rt) => rt.machine)];
    for (const m of all) {
      try {
        m.destroy();
      } catch (error) {
        process.stderr.write(`twin: removing ${m.name} failed: ${String(error)}\n`);
      }
    }
    this.releaseMounts();
    if (!process.env.STANDORT_TWIN_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}
