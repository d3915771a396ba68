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
 * - storage: the real nfs-ganesha, started by the failover script through the
 *   storage machines' own `systemctl`, on a DRBD stand-in (`storage.ts`: no
 *   kernel module here) with one backing folder per site.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { performance } from "node:perf_hooks";
import { loadFootprint } from "../../lib/footprint/load";
import { REPOSITORY_ROOT } from "../../lib/model/load";
import type { SiteModel } from "../../lib/model/model";
import type { Footprint } from "../../lib/footprint/schema";
import { planHostFiles, siteRenderOptions } from "../../lib/preview/files";
import { stackProviderEnv } from "../../lib/preview/run-stack";
import { writeRenderedFiles } from "../../lib/render";
import { CONNTRACKD_CONF } from "../../lib/render/conntrackd";
import { FENCE_UNIT, FENCE_UNIT_FILE } from "../../lib/render/fence";
import {
  BGP_PORT,
  DATABASE_PORTS,
  DRBD_PORT,
  EGRESS,
  FENCE_SSH_PORT,
  HAPROXY_STATS_PORT,
  MONITORING_PORTS,
  NFS_PORT,
  SSH_PORT,
  WEB_PORTS,
  ZoneRule,
  partnerSites,
  zonePolicy,
} from "../../lib/render/policy";
import type { HostFiles, ProxiedService, TunnelPeer } from "../../lib/render/types";
import { NetworkdConfig, NetworkdReadError, readNetworkd } from "../../lib/twin/networkd";
import { ANY_PROTOCOL_PROBE_PORT, ProbeAction, ProbeOutcome } from "../../lib/twin/probes";
import { PROVIDER_API_NAMES, STREAM_PORT, TRANSIT, TwinHost, TwinInputError, TwinWorld, twinWorld } from "../../lib/twin/world";
import { INGRESS_PORTS } from "../../lib/footprint/site-files";
import { Machine, must, privateMountDir, quietly } from "./machine";
import { TWIN_DIR_PREFIX, reap } from "./janitor";
import { UNITS, Unit, startUnit, systemctlStandin } from "./init";
import { TwinTls, makeTls } from "./tls";
import { ipIn, sysctlIn, veth } from "./links";
import { ProviderEffect, ProviderStandIn } from "./provider";
import { linkAddresses } from "./holders";
import { drbdFolders, drbdadmStandin, mountStandin, prepareStorage, resetMember, storageSystemctl, umountStandin } from "./storage";
import { GANESHA_CONF } from "../../lib/render/ganesha";
import { INGRESS_CERT_SCRIPT, INGRESS_DROP_IN } from "../../lib/footprint/ingress";
import { PDNS_CONF } from "../../lib/footprint/dns";
import { TEXTFILE_DIR } from "../../lib/monitoring/plan";
import { PROMETHEUS_CONFIG_PATH } from "../../lib/monitoring/prometheus";
import { ALERTMANAGER_CONFIG_PATH, ALERTMANAGER_DEFAULTS_PATH } from "../../lib/monitoring/alertmanager";
import { COMPOSE_PROJECT_FILE, TwinWorkloads } from "./workloads";

const TSX = ["node", "--import", "tsx"];
/** Where the jobs on a storage host record their state (the replication guards' files for monitoring). */
const JOB_STATE_DIR = "/var/lib/standort";
const HERE = __dirname;
/** The Netcup stand-in's name inside the twin (the operator's command posts to it). */
const NETCUP_API = "api.netcup.twin";
/** Ports real daemons own on a host; a stand-in never takes them. */
const DAEMON_PORTS = new Set([
  SSH_PORT,
  ...WEB_PORTS,
  BGP_PORT,
  HAPROXY_STATS_PORT,
  MONITORING_PORTS.haproxyExporter,
  MONITORING_PORTS.nodeExporter,
  MONITORING_PORTS.prometheus,
  FENCE_SSH_PORT,
]);

export interface TwinOptions {
  readonly location: string;
  /** Site files and footprint. @default the repository's sites/ */
  readonly sitesDir?: string;
  /** Boot from this `plan --files` folder instead of rendering (the twin copies it; the folder stays as it is). */
  readonly filesDir?: string;
  /** Progress lines. @default silent */
  readonly log?: (line: string) => void;
  /**
   * Pair mode (`twin.ts` with two locations): the partner sites whose tunnel
   * ends are real (the other twin), so no stand-in is built for them, and the
   * tunnel files (path → content, rendered with the twin's generated keys)
   * the firewalls boot instead of the plan's placeholders.
   */
  readonly joined?: {
    readonly sites: ReadonlyArray<string>;
    readonly firewallFiles: Readonly<Record<string, string>>;
    /** The job credentials (keys, known_hosts, passwords) derived from this seed, the same at both sites. */
    readonly credentialSeed: string;
  };
  /** Tells two twins of one process apart (namespace prefix and folder). @default "" */
  readonly id?: string;
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
  /** Cabled and configured, its daemons starting: the provider's network already delivers to it, as at a real boot. */
  networked?: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function readdirIfAny(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

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
  /** Namespace names start with it: `tw<pid base 36>`, `tw<pid base 36>_<id>` in a pair. */
  readonly prefix: string;
  private readonly releaseMounts: () => void;
  private readonly log: (line: string) => void;
  /** The container engines of the virtualization hosts (compose sites): the rendered projects, run for real. */
  readonly workloads: TwinWorkloads;
  private destroyed = false;
  private readonly onExit = () => this.destroy();
  /** The footprint the site was rendered from. */
  readonly footprint: Footprint;
  private readonly providerEnv?: Readonly<Record<string, string>>;
  private tls?: TwinTls;
  private provider?: ProviderStandIn;
  private readonly janitor: ChildProcess;
  /** Differences between the files the twin booted and the files the stack installs (only with a given folder). */
  readonly fileDifferences: string[] = [];
  private readonly givenFiles?: string;
  private readonly networkd = new Map<string, NetworkdConfig>();
  /** The partners a stand-in plays (every partner, except the joined twin's site in pair mode). */
  readonly standInPartners: TwinWorld["partners"];
  private readonly joined?: TwinOptions["joined"];

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
    this.joined = options.joined;
    this.standInPartners = this.world.partners.filter((p) => !options.joined?.sites.includes(p.site));
    this.dir = mkdtempSync(join(tmpdir(), `${TWIN_DIR_PREFIX}${model.name}-`));
    // Whatever ends this process (a Ctrl-C its parents escalate, a SIGKILL), the janitor cleans up after it.
    writeFileSync(join(this.dir, "owner"), `${process.pid}\n`);
    this.janitor = spawn("node", ["--import", "tsx", join(HERE, "janitor.ts"), "--watch", String(process.pid)], {
      cwd: REPOSITORY_ROOT,
      detached: true,
      stdio: "ignore",
    });
    this.janitor.unref();
    this.filesDir = join(this.dir, "files");
    this.workloads = new TwinWorkloads(this.log);
    this.prefix = `tw${process.pid.toString(36)}${options.id ? `_${options.id}` : ""}`;
    this.releaseMounts = privateMountDir(join(this.dir, "mnt"));
    process.once("exit", this.onExit);
    this.givenFiles = options.filesDir;
  }

  /** Boots the location; on any failure everything made so far is removed before the error is rethrown. */
  static async boot(options: TwinOptions): Promise<SiteTwin> {
    const reaped = reap();
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
    const rendered: HostFiles[] = planHostFiles(this.model, this.sites, this.footprint, this.providerEnv, {
      ...(this.joined ? { derivedCredentials: this.joined.credentialSeed } : {}),
      // A Hetzner Cloud site's floating IP, as the stand-in provider handed it out (the stack reads it from the provider).
      ...(this.world.failoverIps?.proxy ? { proxyAddresses: { [this.model.name]: this.world.failoverIps.proxy } } : {}),
    });
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
    // Pair mode: the tunnel files with the keys the twin generated (the stack's random keys), for both firewalls.
    for (const host of this.model.hosts.filter((h) => h.role === "firewall")) {
      for (const [path, content] of Object.entries(this.joined?.firewallFiles ?? {})) {
        const target = join(this.filesDir, host.name, path);
        if (!existsSync(target))
          throw new Error(`twin: ${host.name}: ${path} is not a file the stack installs (pair mode replaces files only)`);
        writeFileSync(target, content, { mode: 0o600 });
      }
    }
    // Owners as delivery installs them (root:bird for bird.conf), where the group exists here.
    for (const { host, files } of rendered) {
      for (const f of files) {
        const target = join(this.filesDir, host, f.path);
        if (f.owner && existsSync(target)) quietly(["chown", f.owner, target]);
      }
    }
    // What the twin boots against what the stack installs: a file left out or added is a different site.
    for (const { host, files } of rendered) {
      const installs = new Set(files.map((f) => f.path.replace(/^\//, "")));
      const booted = new Set(filesUnder(join(this.filesDir, host)));
      for (const f of installs) if (!booted.has(f)) this.fileDifferences.push(`${host}: /${f} is missing (the stack installs it)`);
      for (const f of booted) if (!installs.has(f)) this.fileDifferences.push(`${host}: /${f} is not a file the stack installs`);
    }
    // Every host's networkd files are read before anything boots: a file the strict reader refuses is bad input.
    const refused: string[] = [];
    for (const host of this.model.hosts) {
      try {
        this.networkd.set(host.name, this.readNetworkd(host.name));
      } catch (error) {
        if (!(error instanceof NetworkdReadError)) throw error;
        refused.push(`${host.name}: /etc/systemd/network/${error.message}`);
      }
    }
    if (refused.length > 0) throw new TwinInputError(refused);
  }

  /** The footprint the twin booted. */
  get bootedFootprint(): Footprint {
    return this.footprint;
  }

  /** Every host's files as the stack renders them for `footprint` (a footprint edit), with the twin's credentials. */
  renderFor(footprint: Footprint): HostFiles[] {
    return planHostFiles(this.model, this.sites, footprint, this.providerEnv, {
      ...(this.joined ? { derivedCredentials: this.joined.credentialSeed } : {}),
      ...(this.world.failoverIps?.proxy ? { proxyAddresses: { [this.model.name]: this.world.failoverIps.proxy } } : {}),
    });
  }

  /**
   * Delivers a host's new file set as one transaction leaves it (the
   * transaction itself is proven by the delivery tests): changed and new
   * files written, files that left the set removed. Daemons are not
   * reloaded: the twin runs the job units itself. Returns the changed paths.
   */
  async deliver(host: string, files: ReadonlyArray<{ path: string; content: string; mode: string }>): Promise<string[]> {
    const rt = this.hosts.get(host);
    if (!rt?.up) throw new Error(`${host} is not running`);
    const root = join(this.filesDir, host);
    const before = new Set(filesUnder(root).map((f) => `/${f}`));
    const changed: string[] = [];
    for (const f of files) {
      if (this.file(host, f.path) === f.content) {
        before.delete(f.path);
        continue;
      }
      await rt.machine.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', "deliver", f.path, f.mode], {
        input: f.content,
      });
      mkdirSync(dirname(join(root, f.path)), { recursive: true });
      writeFileSync(join(root, f.path), f.content, { mode: parseInt(f.mode, 8) });
      before.delete(f.path);
      changed.push(f.path);
    }
    for (const path of before) {
      await rt.machine.run(["rm", "-f", path]);
      rmSync(join(root, path), { force: true });
      changed.push(path);
    }
    return changed.sort();
  }

  /** Reads one rendered file of a host (as the twin booted it). */
  file(host: string, path: string): string | undefined {
    const p = join(this.filesDir, host, path);
    return existsSync(p) ? readFileSync(p, "utf8") : undefined;
  }

  /** The paths of a host's rendered files, sorted. */
  paths(host: string): string[] {
    return filesUnder(join(this.filesDir, host)).map((f) => `/${f}`);
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
    mkdirSync(this.requests, { recursive: true });
    writeFileSync(join(bin, "systemctl"), systemctlStandin(this.requests), { mode: 0o755 });
    this.watchPoweroffs();
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
    this.writeFiles(this.givenFiles);
    this.material();
    const stores = this.model.hosts.filter((h) => h.role === "storage");
    if (stores.length > 0) prepareStorage(this.dir, this.model.name, this.file(stores[0].name, GANESHA_CONF));
    const outside = ["internet", "provider", this.world.provider.kind === "lan" ? "switch" : "hnet"];
    if (this.world.provider.kind === "lan") outside.push("neighbour");
    for (const p of this.standInPartners) outside.push(`partner-${p.site}`);
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
    // A storage host's systemctl runs the real NFS server (nfs-ganesha) and hands the rest to the common stand-in.
    const systemctl = host.role === "storage" ? this.storageSystemctl() : join(this.dir, "bin", "systemctl");
    const binds = [{ source: systemctl, target: "/usr/bin/systemctl" }];
    // Rendered programs outside /etc (the fence's forced command), and the operator's move command, per directory.
    const programs = new Map<string, string>();
    const local = join(this.dir, "local", host.name);
    // Under /usr/local/lib only the rendered program folders (`/usr/local/lib/standort`): the folder itself holds
    // this machine's own software (node's modules among them).
    const libDirs = readdirIfAny(join(this.filesDir, host.name, "usr/local/lib")).map((d) => `/usr/local/lib/${d}`);
    for (const dir of ["/usr/local/sbin", "/usr/local/bin", ...libDirs]) {
      const rendered = join(this.filesDir, host.name, dir.slice(1));
      if (existsSync(rendered)) {
        mkdirSync(join(local, dir), { recursive: true });
        cpSync(rendered, join(local, dir), { recursive: true });
        // A bind needs its mount point on this machine's file system (an empty folder where none is).
        mkdirSync(dir, { recursive: true });
        programs.set(dir, join(local, dir));
      }
    }
    // DRBD has no kernel module here: stand-ins for drbdadm, and for mount/umount of its device, first on the PATH.
    if (host.role === "storage") {
      const { backing, state } = drbdFolders(this.dir, this.model.name);
      const sbin = join(local, "usr/local/sbin");
      mkdirSync(sbin, { recursive: true });
      writeFileSync(join(sbin, "drbdadm"), drbdadmStandin(state), { mode: 0o755 });
      writeFileSync(join(sbin, "mount"), mountStandin(state, backing), { mode: 0o755 });
      writeFileSync(join(sbin, "umount"), umountStandin(state), { mode: 0o755 });
      mkdirSync("/usr/local/sbin", { recursive: true });
      programs.set("/usr/local/sbin", sbin);
    }
    const move = this.providerEnv?.FAILOVER_MOVE_COMMAND;
    if (move && (host.role === "firewall" || host.role === "proxy")) {
      if (!/^\/usr\/local\/s?bin\/[A-Za-z0-9._-]+$/.test(move)) {
        throw new TwinInputError([
          `stacks/Pulumi.${this.model.name}.yaml: standort:providerEnv.FAILOVER_MOVE_COMMAND: the twin stands in for a command under /usr/local/sbin or /usr/local/bin, got ${move}`,
        ]);
      }
      const dir = join(local, dirname(move));
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
      programs.set(dirname(move), dir);
    }
    for (const [target, source] of programs) binds.push({ source, target });
    // A storage host's disks: its own /srv (the trees, the backups) and its own job state, kept across a crash.
    if (host.role === "storage") {
      for (const [target, name] of [
        ["/srv", "srv"],
        [JOB_STATE_DIR, "state"],
      ]) {
        const source = join(this.dir, name, host.name);
        mkdirSync(source, { recursive: true });
        mkdirSync(target, { recursive: true });
        binds.push({ source, target });
      }
    }
    // Every host's own textfile collector folder (what its jobs and scripts record for node exporter).
    const metrics = join(this.dir, "metrics", host.name);
    mkdirSync(metrics, { recursive: true });
    mkdirSync(TEXTFILE_DIR, { recursive: true });
    binds.push({ source: metrics, target: TEXTFILE_DIR });
    return this.machineFor(host.name, [join(this.filesDir, host.name, "etc"), this.extras(host.name)], binds);
  }

  /** The storage machines' systemctl (`storageSystemctl`), written once. */
  private storageSystemctl(): string {
    const path = join(this.dir, "bin", "systemctl-storage");
    if (!existsSync(path)) {
      mkdirSync(join(this.dir, "ganesha"), { recursive: true });
      writeFileSync(path, storageSystemctl(join(this.dir, "bin", "systemctl"), join(this.dir, "ganesha")), { mode: 0o755 });
    }
    return path;
  }

  /** Where a storage host's nfs-ganesha logs (`<twin>/ganesha/<host>.log`). */
  ganeshaLog(host: string): string {
    return join(this.dir, "ganesha", `${host}.log`);
  }

  /** Creates a veth pair between two machines (`a:nameA` ↔ `b:nameB`). */
  private veth(a: string, nameA: string, b: string, nameB: string, options: { layer3?: boolean } = {}): void {
    veth(this.machine(a).ns, nameA, this.machine(b).ns, nameB, options);
  }

  private ip(machine: string, ...args: string[]): void {
    ipIn(this.machine(machine).ns, ...args);
  }

  private sysctl(machine: string, ...settings: string[]): void {
    sysctlIn(this.machine(machine).ns, ...settings);
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
      w.streamServer,
      w.apiAddress,
      ...w.allowlistClients,
      ...this.standInPartners.flatMap((p) => (p.endpoint ? [p.endpoint] : [])),
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
    for (const p of this.standInPartners) {
      const m = `partner-${p.site}`;
      for (const a of [p.addresses.data, p.addresses.app]) this.ip(m, "addr", "add", `${a}/32`, "dev", "lo");
      this.sysctl(m, "net.ipv4.conf.all.ignore_routes_with_linkdown=1");
    }
    // Stand-ins outside: servers on the internet (what egress reaches), the partners' replication ports.
    const internet = this.machine("internet");
    await startUnit(internet, this.standin("internet", { tcp: EGRESS.tcp, udp: EGRESS.udp, bind: w.internetClient }));
    // A server that keeps connections open and echoes: the far end of long-lived streams through the NAT.
    await startUnit(internet, this.standin("internet-streams", { echo: [STREAM_PORT], bind: w.streamServer }, "echo"));
    for (const p of this.standInPartners) {
      await startUnit(this.machine(`partner-${p.site}`), this.standin(`partner-${p.site}`, { tcp: [22, ...DATABASE_PORTS] }));
    }
    this.provider = new ProviderStandIn({
      model: this.model,
      world: this.world,
      dir: this.dir,
      ...(this.providerEnv ? { providerEnv: this.providerEnv } : {}),
      tls: this.tls!,
      machine: (name) => this.machine(name),
      addOutsideMachine: (name) => {
        const m = this.machineFor(name, [this.extras(name)]);
        m.create();
        return m;
      },
      file: (host, path) => this.file(host, path),
      runningHosts: () =>
        [...this.hosts.values()]
          .filter((rt) => rt.up || rt.networked)
          .map((rt) => ({
            name: rt.host.name,
            index: rt.index,
            attachment: rt.host.attachment,
            internalNic: rt.host.internalNic,
            machine: rt.machine,
          })),
      crash: (host, why) => this.crash(host, why),
      log: this.log,
    });
    await this.provider.start();
  }

  /** Current holder of each provider-routed address (failover and floating IPs, the static next hop). */
  get routed(): ReadonlyMap<string, string> {
    return this.provider?.routed ?? new Map<string, string>();
  }

  /** When the provider last moved `ip` (a route effect of its API; epoch ms), if it ever did. */
  lastMoved(ip: string): number | undefined {
    const moves = (this.provider?.effects ?? []).filter((e) => e.effect === "route" && e.ip === ip);
    return moves.length > 0 ? Math.max(...moves.map((e) => e.at)) : undefined;
  }

  /** What the provider did so far (routes moved, alias IPs changed, servers powered off), and the fences over mgmt. */
  get effects(): ReadonlyArray<ProviderEffect> {
    return [...(this.provider?.effects ?? []), ...this.fenced].sort((a, b) => a.at - b.at);
  }

  /** Where a machine's `systemctl poweroff` asks the twin to power it off. */
  private get requests(): string {
    return join(this.dir, "requests");
  }

  /** Hosts powered off by their own `systemctl poweroff` (the fence's forced command), as effects. */
  private readonly fenced: ProviderEffect[] = [];

  /** Powers a machine off when its `systemctl poweroff` asks (polled every 100 ms, while the twin lives). */
  private watchPoweroffs(): void {
    const timer = setInterval(() => {
      if (this.destroyed) return clearInterval(timer);
      for (const file of readdirSync(this.requests)) {
        if (!file.startsWith("poweroff-")) continue;
        const host = file.slice("poweroff-".length);
        rmSync(join(this.requests, file), { force: true });
        if (!this.hosts.get(host)?.up) continue;
        this.fenced.push({ at: Date.now(), effect: "poweroff", host, via: "systemctl poweroff" });
        this.crash(host, "powered off by systemctl poweroff").catch((error: unknown) =>
          this.log(`${host}: poweroff failed: ${String(error)}`),
        );
      }
    }, 100);
    timer.unref();
  }

  /** The machine of a BGP peer of the site (the provider's edge routers). */
  bgpPeerMachine(peerName: string): string {
    return this.provider!.bgpPeerMachine(peerName);
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
    ports: {
      tcp?: ReadonlyArray<number>;
      udp?: ReadonlyArray<number>;
      tls?: ReadonlyArray<string>;
      echo?: ReadonlyArray<number>;
      bind?: string;
    },
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
        ...(ports.echo?.length ? ["--echo", ports.echo.join(",")] : []),
        ...(ports.tls?.length ? ["--tls", ports.tls.join(","), "--cert", this.tls!.cert, "--key", this.tls!.key] : []),
        ...(ports.bind ? ["--bind", ports.bind] : []),
      ],
      readyLine: "ready",
    };
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
      for (const p of this.standInPartners) {
        this.veth(name, p.tunnel, `partner-${p.site}`, `f${member}`, { layer3: true });
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
    const cfg = this.networkd.get(rt.host.name)!;
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
    // DRBD comes up Secondary at boot, with nothing mounted.
    if (rt.host.role === "storage") resetMember(this.dir, this.model.name, name);
    rt.machine.create();
    this.cable(rt);
    await this.providerImage(rt);
    const m = rt.machine;
    if (this.file(name, "/etc/sysctl.d/90-standort.conf") !== undefined)
      await m.run(["sysctl", "-q", "-p", "/etc/sysctl.d/90-standort.conf"]);
    await this.applyNetworkd(rt);
    if (this.file(name, "/etc/nftables.conf") !== undefined) await m.run(["nft", "-f", "/etc/nftables.conf"]);
    // Hetzner's network delivers to a server before its daemons start (conntrackd asks its peer for the table then).
    rt.networked = true;
    this.provider?.fabricRoutes();
    const units: Unit[] = [UNITS.syslog(), UNITS.ssh(this.sshConfig(name))];
    units.push(...this.standins(rt));
    if (this.file(name, "/etc/haproxy/haproxy.cfg") !== undefined) units.push(UNITS.haproxy());
    if (this.file(name, PDNS_CONF) !== undefined) units.push(UNITS.pdns());
    // The monitoring: node exporter on every host, Prometheus where its configuration is (lib/monitoring).
    units.push(UNITS.nodeExporter());
    if (this.file(name, PROMETHEUS_CONFIG_PATH) !== undefined) units.push(UNITS.prometheus());
    const alertmanagerArgs = this.file(name, ALERTMANAGER_DEFAULTS_PATH);
    if (this.file(name, ALERTMANAGER_CONFIG_PATH) !== undefined && alertmanagerArgs !== undefined) {
      // The rendered ARGS="…" line, split as the unit's $ARGS is (no quoting inside).
      const args = /^ARGS="([^"]*)"$/m.exec(alertmanagerArgs)?.[1] ?? "";
      units.push(UNITS.alertmanager(args.split(/\s+/).filter(Boolean)));
    }
    if (this.file(name, "/etc/bird/bird.conf") !== undefined) units.push(UNITS.bird());
    const fence = this.file(name, FENCE_UNIT_FILE);
    if (fence !== undefined) units.push(UNITS.fromUnitFile(FENCE_UNIT, fence));
    // conntrackd before keepalived: the failover script commits its cache on a takeover.
    if (this.file(name, CONNTRACKD_CONF) !== undefined) units.push(UNITS.conntrackd());
    if (this.file(name, "/etc/keepalived/keepalived.conf") !== undefined) units.push(this.keepalived(rt));
    rt.unitDefinitions = units;
    // The ingress's drop-in runs its certificate program before HAProxy starts (ExecStartPre).
    if (this.file(name, INGRESS_DROP_IN) !== undefined) await m.run([INGRESS_CERT_SCRIPT]);
    for (const unit of units) {
      const started = await startUnit(m, unit);
      rt.units.set(unit.name, started.process);
    }
    // The compose projects, as their units (standort-compose@<project>) start them once the network is up.
    const projects = this.paths(name)
      .map((path) => ({ path, match: COMPOSE_PROJECT_FILE.exec(path) }))
      .filter((p) => p.match !== null)
      .map((p) => ({ project: p.match![1], content: this.file(name, p.path)! }));
    if (projects.length > 0) await this.workloads.start(name, m, projects);
    rt.up = true;
    this.provider?.fabricRoutes();
    this.log(`${name} booted (${Math.round(performance.now() - t0)} ms)`);
  }

  /**
   * keepalived as Debian starts it; on a storage member only once its DRBD peer answers or 20 s passed, as the
   * rendered first-boot unit (standort-data-volume, before keepalived) waits for the peer on every boot: promoted
   * without a peer, DRBD would fence one that is only slower to boot.
   */
  private keepalived(rt: HostRuntime): Unit {
    const unit = UNITS.keepalived();
    const pair = this.model.pairs.find((p) => p.role === "storage" && p.members.includes(rt.host.name) && !p.dissolved);
    if (!pair) return unit;
    const peer = pair.heartbeat[pair.members.find((m) => m !== rt.host.name)!];
    const wait = `i=0; until timeout 1 bash -c 'exec 3<>/dev/tcp/${peer}/${DRBD_PORT}' 2>/dev/null || [ $i -ge 20 ]; do sleep 1; i=$((i + 1)); done`;
    return { ...unit, prepare: [...(unit.prepare ?? []), wait] };
  }

  /** sshd's configuration for a host: the twin's host key, every address, the host's name in the banner. */
  private sshConfig(name: string): string {
    const path = join(this.dir, "ssh", `${name}.conf`);
    writeFileSync(
      path,
      [
        // Pair mode: the rendered drop-ins take part, first as Debian's sshd_config includes them (the storage pair's
        // host key and the replication and backup logins), so the partner's jobs log in as they will on the hosts.
        ...(this.joined ? ["Include /etc/ssh/sshd_config.d/*.conf"] : []),
        "Port 22",
        "ListenAddress 0.0.0.0",
        `HostKey ${join(this.dir, "ssh", "host_ed25519")}`,
        "PidFile /run/sshd.pid",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        // As Debian's sshd_config has it: the sftp subsystem (restic's sftp backend asks for it).
        "Subsystem sftp /usr/lib/openssh/sftp-server",
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
    // A rule proved by its state has its real daemon on the port (conntrackd), never a stand-in.
    const rules = this.policy.filter((r) => r.targets.includes(role) && r.provedBy === undefined);
    const tcp = new Set<number>();
    const udp = new Set<number>();
    for (const r of rules) {
      if (r.protocol === "tcp") r.ports.forEach((p) => tcp.add(p));
      if (r.protocol === "udp") r.ports.forEach((p) => udp.add(p));
      if (r.protocol === "any") tcp.add(ANY_PROTOCOL_PROBE_PORT);
    }
    const units: Unit[] = [];
    // The NFS server is the real nfs-ganesha, which the failover script starts on the active member only.
    if (role === "storage") tcp.delete(NFS_PORT);
    // The real Alertmanager (its API and its cluster's TCP side) where it is rendered.
    if (this.file(rt.host.name, ALERTMANAGER_CONFIG_PATH) !== undefined) {
      tcp.delete(MONITORING_PORTS.alertmanager);
      tcp.delete(MONITORING_PORTS.alertmanagerCluster);
    }
    // Pair mode: the databases replicated between the two sites run for real on the virtualization hosts.
    if (role === "virtualization" && this.joined) for (const p of DATABASE_PORTS) tcp.delete(p);
    const tls: string[] = [];
    // A compose site's virtualization host runs the real ingress (HAProxy from its rendered file) on the ingress ports.
    if (role === "virtualization" && this.file(rt.host.name, INGRESS_DROP_IN) !== undefined) {
      tcp.delete(INGRESS_PORTS.readWrite);
      tcp.delete(INGRESS_PORTS.readOnly);
    }
    if (role === "virtualization") {
      for (const [mode, port] of [
        ["rw", INGRESS_PORTS.readWrite],
        ["ro", INGRESS_PORTS.readOnly],
      ] as const) {
        if (tcp.delete(port)) tls.push(`${port}:${mode}`);
      }
    }
    const plain = [...tcp].filter((p) => !DAEMON_PORTS.has(p)).sort((a, b) => a - b);
    // A real tunnel (pair mode) owns its listen port: wireguard-go binds it when the failover script starts it.
    const real = new Set(this.tunnelPeers.filter((t) => this.joined?.sites.includes(t.site)).map((t) => t.listenPort));
    const datagrams = [...udp].filter((p) => !real.has(p)).sort((a, b) => a - b);
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
    rt.networked = false;
    this.workloads.crashed(name);
    rt.machine.destroy();
    rt.units.clear();
    // The kernel removes a deleted namespace's links in the background: take the far ends away now, so the
    // host can be cabled again at once when it returns.
    for (const p of rt.ports.values()) {
      quietly(["ip", "-n", this.machine(p.machine).ns, "link", "del", p.port]);
      // A cut lives at the far side: the new cable must not inherit it.
      for (const family of ["inet", "netdev", "arp"])
        quietly(["ip", "netns", "exec", this.machine(p.machine).ns, "nft", "delete", "table", family, `twin_cut_${p.port}`]);
    }
    if (rt.host.role === "firewall") {
      const member = this.model.pairs.find((p) => p.role === "firewall")!.members.indexOf(name) + 1;
      for (const p of this.standInPartners) quietly(["ip", "-n", this.machine(`partner-${p.site}`).ns, "link", "del", `f${member}`]);
    }
    this.log(`${name} down (${why})`);
    this.provider?.fabricRoutes();
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

  /**
   * Starts a unit the host's files do not define (a workload the service deployment would start, such as a
   * database server) and keeps it with the host's units: a crash kills it, `stopUnit` stops it.
   */
  async runUnit(name: string, unit: Unit, timeoutMs?: number): Promise<void> {
    const rt = this.hosts.get(name);
    if (!rt?.up) throw new Error(`${name} is not running`);
    rt.units.set(unit.name, (await startUnit(rt.machine, unit, timeoutMs)).process);
  }

  /** The lines a host logged to syslog (the failover script's `logger` lines among them). */
  syslog(name: string): string[] {
    return this.hosts.get(name)?.machine.lines("syslog") ?? [];
  }

  /**
   * Puts (or takes away) a tap on every running host: a table of the twin's
   * that records each TCP SYN, UDP datagram and echo request arriving at the
   * host, before any of the host's own rules (priority -400). It accepts
   * everything; the host's rules decide as before.
   */
  async tap(on: boolean): Promise<void> {
    const table = [
      "table ip twin_tap {",
      "\tset seen_tcp { type ipv4_addr . ipv4_addr . inet_service; size 262144; flags dynamic; }",
      "\tset seen_udp { type ipv4_addr . ipv4_addr . inet_service; size 262144; flags dynamic; }",
      "\tset seen_icmp { type ipv4_addr . ipv4_addr; size 262144; flags dynamic; }",
      "\tchain pre {",
      "\t\ttype filter hook prerouting priority -400; policy accept;",
      "\t\ttcp flags & (syn | ack) == syn add @seen_tcp { ip saddr . ip daddr . tcp dport }",
      "\t\tmeta l4proto udp add @seen_udp { ip saddr . ip daddr . udp dport }",
      "\t\ticmp type echo-request add @seen_icmp { ip saddr . ip daddr }",
      "\t}",
      "}",
    ].join("\n");
    await Promise.all(
      [...this.hosts.values()]
        .filter((rt) => rt.up)
        .map(async (rt) => {
          await rt.machine.exec(["nft", "delete", "table", "ip", "twin_tap"]);
          if (on) await rt.machine.run(["nft", "-f", "-"], { input: `${table}\n` });
        }),
    );
  }

  /** What the taps recorded, per host: `tcp|udp <source> <destination> <port>` and `icmp <source> <destination>`. */
  async tapped(): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    await Promise.all(
      [...this.hosts.values()]
        .filter((rt) => rt.up)
        .map(async (rt) => {
          const r = await rt.machine.exec(["nft", "-j", "list", "table", "ip", "twin_tap"], { timeoutMs: 20_000 });
          const seen = new Set<string>();
          if (r.code === 0) {
            const items = (
              JSON.parse(r.stdout) as {
                nftables: Array<{
                  set?: {
                    name: string;
                    elem?: Array<{ concat?: Array<string | number> } | { elem: { val: { concat: Array<string | number> } } }>;
                  };
                }>;
              }
            ).nftables;
            for (const item of items) {
              for (const e of item.set?.elem ?? []) {
                const parts = "concat" in e ? e.concat : "elem" in e ? e.elem.val.concat : undefined;
                if (parts) seen.add([item.set!.name.replace(/^seen_/, ""), ...parts].join(" "));
              }
            }
          }
          out.set(rt.host.name, seen);
        }),
    );
    return out;
  }

  /** The state the failover script of `pair` last recorded on a host (`master`, `backup`, `fault`, `stop`), if any. */
  async failoverState(host: string, pair: string): Promise<string | undefined> {
    const rt = this.hosts.get(host);
    if (!rt?.up) return undefined;
    const r = await rt.machine.exec(["cat", `/run/standort/failover-${pair}.state`], { timeoutMs: 5_000 });
    return r.code === 0 ? r.stdout.trim().split(" ")[0] : undefined;
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
      // Out of its bridge, the port would be an interface of the far machine itself, whose kernel answers ARP
      // for its own addresses (the provider's router): everything arriving on it is dropped first.
      const table = `twin_cut_${p.port}`;
      if (cut)
        must(
          ["ip", "netns", "exec", ns, "nft", "-f", "-"],
          `table netdev ${table} {\n\tchain in { type filter hook ingress device "${p.port}" priority -500; drop; }\n}\n`,
        );
      must(["ip", "-n", ns, "link", "set", p.port, ...(cut ? ["nomaster"] : ["master", p.bridge])]);
      if (!cut) quietly(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", table]);
      return;
    }
    // A routed port (Hetzner's network) has no bridge to leave: its frames are dropped at the far side instead.
    // Every frame: IP in both directions, and ARP too (inet chains never see it), as a dead path drops them.
    const table = `twin_cut_${p.port}`;
    for (const family of ["inet", "netdev", "arp"]) quietly(["ip", "netns", "exec", ns, "nft", "delete", "table", family, table]);
    if (cut) {
      must(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        [
          `table inet ${table} {\n\tchain f { type filter hook forward priority -10; iifname "${p.port}" drop; oifname "${p.port}" drop; }\n\tchain i { type filter hook input priority -10; iifname "${p.port}" drop; }\n\tchain o { type filter hook output priority -10; oifname "${p.port}" drop; }\n}`,
          `table netdev ${table} {\n\tchain in { type filter hook ingress device "${p.port}" priority -500; drop; }\n}`,
          `table arp ${table} {\n\tchain o { type filter hook output priority -10; oifname "${p.port}" drop; }\n}`,
          "",
        ].join("\n"),
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
        return linkAddresses(r.stdout).includes(` ${address}/`);
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
    this.provider?.stop();
    this.workloads.destroy();
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
    // Everything is gone: the janitor has nothing left to do.
    this.janitor.kill("SIGKILL");
  }
}
