/**
 * A strict reader of the systemd-networkd files standort renders: it parses
 * `.network` and `.netdev` files into what the site twin applies, and refuses
 * every section, key or value it does not implement, so nothing in a rendered
 * file is silently skipped (a route the twin ignored would make it prove a
 * site that cannot work).
 *
 * Implemented (systemd.network(5), systemd.netdev(5)):
 * - `.netdev`: `[NetDev] Name, Kind (vlan | ipvlan), Description, MTUBytes`; `[VLAN] Id`; `[IPVLAN] Mode (L2)`.
 * - `.network`: `[Match] Name` (exact names, space-separated); `[Link] MTUBytes`;
 *   `[Network] Address, DHCP (ipv4 | no), VLAN, IPVLAN, LinkLocalAddressing (no), IPv6AcceptRA (no),
 *   ConfigureWithoutCarrier (yes), KeepConfiguration (static)`;
 *   `[Route] Destination, Gateway, GatewayOnLink, Table, Metric`;
 *   `[RoutingPolicyRule] From, To, Table, Priority, SuppressPrefixLength`.
 *
 * Pure: file contents in, a typed configuration out. Errors name the file,
 * the line, the section and key, and the rule.
 */
import { cidr, formatCidr, parseAddress, parseCidr } from "../net/ipv4";

/** One problem in one rendered networkd file. */
export class NetworkdReadError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly where: string,
    readonly rule: string,
  ) {
    super(`${file}:${line}: ${where}: ${rule}`);
    this.name = "NetworkdReadError";
  }
}

/** A route of a `[Route]` section; `destination` is a CIDR (`0.0.0.0/0` when the file gives none). */
export interface NetworkdRoute {
  readonly destination: string;
  readonly gateway?: string;
  readonly onLink: boolean;
  /** `main` or a numeric table id. */
  readonly table: string;
  readonly metric?: number;
}

/** A `[RoutingPolicyRule]` section. */
export interface NetworkdRule {
  readonly from?: string;
  readonly to?: string;
  readonly table: string;
  readonly priority?: number;
  readonly suppressPrefixLength?: number;
}

/** A `.network` file: which links it configures and how. */
export interface NetworkdNetwork {
  readonly file: string;
  readonly match: ReadonlyArray<string>;
  readonly dhcp: boolean;
  readonly mtu?: number;
  /** `KeepConfiguration=static`: the link keeps the addresses and routes configured before networkd (the provider's image's). */
  readonly keepStatic: boolean;
  /** Addresses with prefix length (`10.30.0.10/24`). */
  readonly addresses: ReadonlyArray<string>;
  /** Names of VLAN netdevs stacked on the matched link. */
  readonly vlans: ReadonlyArray<string>;
  /** Names of IPVLAN netdevs stacked on the matched link. */
  readonly ipvlans: ReadonlyArray<string>;
  readonly routes: ReadonlyArray<NetworkdRoute>;
  readonly rules: ReadonlyArray<NetworkdRule>;
}

/** A `.netdev` file: a virtual link. */
export type NetworkdNetdev =
  | { readonly file: string; readonly name: string; readonly kind: "vlan"; readonly vlanId: number; readonly mtu?: number }
  | { readonly file: string; readonly name: string; readonly kind: "ipvlan"; readonly mode: "L2"; readonly mtu?: number };

export interface NetworkdConfig {
  readonly networks: ReadonlyArray<NetworkdNetwork>;
  readonly netdevs: ReadonlyArray<NetworkdNetdev>;
}

interface Entry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}
interface Section {
  readonly name: string;
  readonly line: number;
  readonly entries: Entry[];
}

/** Splits an INI-style unit file into sections; comments and blank lines are skipped. */
function sections(file: string, content: string): Section[] {
  const out: Section[] = [];
  content.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      out.push({ name: header[1], line: n, entries: [] });
      return;
    }
    const kv = /^([A-Za-z0-9]+)=(.*)$/.exec(line);
    if (!kv) throw new NetworkdReadError(file, n, "(line)", `${JSON.stringify(raw)} is neither a section header nor Key=Value`);
    const current = out[out.length - 1];
    if (!current) throw new NetworkdReadError(file, n, kv[1], "appears before any section");
    current.entries.push({ key: kv[1], value: kv[2].trim(), line: n });
  });
  return out;
}

function fail(file: string, at: { line: number }, where: string, rule: string): never {
  throw new NetworkdReadError(file, at.line, where, rule);
}

function address(file: string, e: Entry, where: string): string {
  if (parseAddress(e.value) === undefined) fail(file, e, where, `${e.value} is not an IPv4 address`);
  return e.value;
}

function prefix(file: string, e: Entry, where: string, { host }: { host: boolean }): string {
  const parsed = parseCidr(e.value);
  if (!parsed) fail(file, e, where, `${e.value} is not an IPv4 prefix (a.b.c.d/len)`);
  // An interface address keeps its host bits; a route or rule prefix must be aligned.
  if (!host && !parsed.aligned) fail(file, e, where, `${e.value} has host bits set (expected ${formatCidr(cidr(e.value))})`);
  return e.value;
}

function integer(file: string, e: Entry, where: string, min: number, max: number): number {
  const n = Number(e.value);
  if (!/^\d+$/.test(e.value) || n < min || n > max) fail(file, e, where, `${e.value} must be an integer from ${min} to ${max}`);
  return n;
}

function table(file: string, e: Entry, where: string): string {
  if (e.value === "main") return "main";
  return String(integer(file, e, where, 1, 4294967295));
}

function oneOf(file: string, e: Entry, where: string, values: ReadonlyArray<string>): string {
  if (!values.includes(e.value)) fail(file, e, where, `${e.value} is not implemented by the twin (accepted: ${values.join(", ")})`);
  return e.value;
}

/** Refuses a key given twice in one section where networkd keeps only one value. */
function single(file: string, section: Section, key: string): Entry | undefined {
  const all = section.entries.filter((e) => e.key === key);
  if (all.length > 1) fail(file, all[1], `[${section.name}] ${key}`, "is given twice");
  return all[0];
}

function unknownKeys(file: string, section: Section, known: ReadonlyArray<string>): void {
  for (const e of section.entries) {
    if (!known.includes(e.key))
      fail(file, e, `[${section.name}] ${e.key}`, `is not implemented by the twin (it reads ${known.join(", ")})`);
  }
}

function readNetwork(file: string, content: string): NetworkdNetwork {
  const all = sections(file, content);
  const match: string[] = [];
  const addresses: string[] = [];
  const vlans: string[] = [];
  const ipvlans: string[] = [];
  const routes: NetworkdRoute[] = [];
  const rules: NetworkdRule[] = [];
  let dhcp = false;
  let keepStatic = false;
  let matched = false;
  let mtu: number | undefined;
  for (const s of all) {
    const at = (key: string) => `[${s.name}] ${key}`;
    switch (s.name) {
      case "Match": {
        unknownKeys(file, s, ["Name"]);
        const e = single(file, s, "Name");
        if (!e) fail(file, s, "[Match]", "needs Name=");
        for (const name of e.value.split(/\s+/)) {
          if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(name))
            fail(file, e, at("Name"), `${name} is not an exact interface name (globs are not implemented)`);
          match.push(name);
        }
        matched = true;
        break;
      }
      case "Link": {
        unknownKeys(file, s, ["MTUBytes"]);
        const e = single(file, s, "MTUBytes");
        if (e) mtu = integer(file, e, at("MTUBytes"), 68, 65535);
        break;
      }
      case "Network": {
        unknownKeys(file, s, [
          "Address",
          "DHCP",
          "VLAN",
          "IPVLAN",
          "LinkLocalAddressing",
          "IPv6AcceptRA",
          "ConfigureWithoutCarrier",
          "KeepConfiguration",
        ]);
        for (const e of s.entries) {
          switch (e.key) {
            case "Address":
              addresses.push(prefix(file, e, at("Address"), { host: true }));
              break;
            case "DHCP":
              dhcp = oneOf(file, e, at("DHCP"), ["ipv4", "no"]) === "ipv4";
              break;
            case "VLAN":
              vlans.push(e.value);
              break;
            case "IPVLAN":
              ipvlans.push(e.value);
              break;
            case "LinkLocalAddressing":
            case "IPv6AcceptRA":
              // The twin runs without IPv6; these only keep networkd from adding it.
              oneOf(file, e, at(e.key), ["no"]);
              break;
            case "ConfigureWithoutCarrier":
              // The twin configures every link whether or not it has carrier, as networkd does with yes.
              oneOf(file, e, at(e.key), ["yes"]);
              break;
            case "KeepConfiguration":
              // The twin never drops what a link had before its files apply, which is what static keeps.
              keepStatic = oneOf(file, e, at(e.key), ["static"]) === "static";
              break;
          }
        }
        break;
      }
      case "Route": {
        unknownKeys(file, s, ["Destination", "Gateway", "GatewayOnLink", "Table", "Metric"]);
        const destination = single(file, s, "Destination");
        const gateway = single(file, s, "Gateway");
        const onLink = single(file, s, "GatewayOnLink");
        const t = single(file, s, "Table");
        const metric = single(file, s, "Metric");
        if (!gateway && !destination) fail(file, s, "[Route]", "needs Gateway= or Destination=");
        routes.push({
          destination: destination ? prefix(file, destination, at("Destination"), { host: false }) : "0.0.0.0/0",
          ...(gateway ? { gateway: address(file, gateway, at("Gateway")) } : {}),
          onLink: onLink ? oneOf(file, onLink, at("GatewayOnLink"), ["yes", "no"]) === "yes" : false,
          table: t ? table(file, t, at("Table")) : "main",
          ...(metric ? { metric: integer(file, metric, at("Metric"), 0, 4294967295) } : {}),
        });
        break;
      }
      case "RoutingPolicyRule": {
        unknownKeys(file, s, ["From", "To", "Table", "Priority", "SuppressPrefixLength"]);
        const from = single(file, s, "From");
        const to = single(file, s, "To");
        const t = single(file, s, "Table");
        const priority = single(file, s, "Priority");
        const suppress = single(file, s, "SuppressPrefixLength");
        rules.push({
          ...(from ? { from: prefix(file, from, at("From"), { host: false }) } : {}),
          ...(to ? { to: prefix(file, to, at("To"), { host: false }) } : {}),
          table: t ? table(file, t, at("Table")) : "main",
          ...(priority ? { priority: integer(file, priority, at("Priority"), 0, 4294967295) } : {}),
          ...(suppress ? { suppressPrefixLength: integer(file, suppress, at("SuppressPrefixLength"), 0, 32) } : {}),
        });
        break;
      }
      default:
        fail(file, s, `[${s.name}]`, "is a section the twin does not implement (it reads Match, Link, Network, Route, RoutingPolicyRule)");
    }
  }
  if (!matched) fail(file, { line: 1 }, "[Match]", "is missing: a .network file without Name= would configure every link");
  return { file, match, dhcp, ...(mtu !== undefined ? { mtu } : {}), keepStatic, addresses, vlans, ipvlans, routes, rules };
}

function readNetdev(file: string, content: string): NetworkdNetdev {
  const all = sections(file, content);
  const netdev = all.find((s) => s.name === "NetDev");
  if (!netdev) fail(file, { line: 1 }, "[NetDev]", "is missing");
  unknownKeys(file, netdev, ["Name", "Kind", "Description", "MTUBytes"]);
  const name = single(file, netdev, "Name");
  const kind = single(file, netdev, "Kind");
  const mtuEntry = single(file, netdev, "MTUBytes");
  if (!name) fail(file, netdev, "[NetDev]", "needs Name=");
  if (!kind) fail(file, netdev, "[NetDev]", "needs Kind=");
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(name.value)) fail(file, name, "[NetDev] Name", `${name.value} is not a valid interface name`);
  const mtu = mtuEntry ? integer(file, mtuEntry, "[NetDev] MTUBytes", 68, 65535) : undefined;
  const k = oneOf(file, kind, "[NetDev] Kind", ["vlan", "ipvlan"]);
  for (const s of all) {
    if (s.name === "NetDev") continue;
    const expected = k === "vlan" ? "VLAN" : "IPVLAN";
    if (s.name !== expected) fail(file, s, `[${s.name}]`, `is not implemented for Kind=${k} (it reads [NetDev] and [${expected}])`);
  }
  const extra = (sectionName: string) => all.find((s) => s.name === sectionName);
  if (k === "vlan") {
    const v = extra("VLAN");
    if (!v) fail(file, kind, "[VLAN]", "is missing: a VLAN needs Id=");
    unknownKeys(file, v, ["Id"]);
    const id = single(file, v, "Id");
    if (!id) fail(file, v, "[VLAN]", "needs Id=");
    return { file, name: name.value, kind: "vlan", vlanId: integer(file, id, "[VLAN] Id", 1, 4094), ...(mtu ? { mtu } : {}) };
  }
  const v = extra("IPVLAN");
  if (!v) fail(file, kind, "[IPVLAN]", "is missing: an IPVLAN needs Mode=");
  unknownKeys(file, v, ["Mode"]);
  const mode = single(file, v, "Mode");
  if (!mode) fail(file, v, "[IPVLAN]", "needs Mode=");
  oneOf(file, mode, "[IPVLAN] Mode", ["L2"]);
  return { file, name: name.value, kind: "ipvlan", mode: "L2", ...(mtu ? { mtu } : {}) };
}

/**
 * Reads every networkd file of one host (`name` → content, names as in
 * `/etc/systemd/network`). Files other than `.network` and `.netdev` are refused.
 * Cross-file rules: every VLAN=/IPVLAN= names a netdev of that kind, and every
 * netdev is stacked by exactly one network file.
 * @throws NetworkdReadError naming file, line, section and key, and the rule
 */
export function readNetworkd(files: Readonly<Record<string, string>>): NetworkdConfig {
  const networks: NetworkdNetwork[] = [];
  const netdevs: NetworkdNetdev[] = [];
  for (const name of Object.keys(files).sort()) {
    if (name.endsWith(".network")) networks.push(readNetwork(name, files[name]));
    else if (name.endsWith(".netdev")) netdevs.push(readNetdev(name, files[name]));
    else throw new NetworkdReadError(name, 1, "(file)", "is neither a .network nor a .netdev file (the twin reads no .link files)");
  }
  const byName = new Map(netdevs.map((d) => [d.name, d]));
  const stacked = new Map<string, string>();
  for (const n of networks) {
    for (const [list, kind] of [
      [n.vlans, "vlan"],
      [n.ipvlans, "ipvlan"],
    ] as const) {
      for (const child of list) {
        const d = byName.get(child);
        if (!d || d.kind !== kind) {
          throw new NetworkdReadError(
            n.file,
            1,
            `[Network] ${kind === "vlan" ? "VLAN" : "IPVLAN"}`,
            `${child} has no .netdev of Kind=${kind}`,
          );
        }
        const other = stacked.get(child);
        if (other) throw new NetworkdReadError(n.file, 1, "[Network]", `${child} is already stacked by ${other}`);
        stacked.set(child, n.file);
      }
    }
  }
  for (const d of netdevs) {
    if (!stacked.has(d.name))
      throw new NetworkdReadError(d.file, 1, "[NetDev] Name", `${d.name} is stacked on no link (no VLAN=/IPVLAN= names it)`);
  }
  return { networks, netdevs };
}
