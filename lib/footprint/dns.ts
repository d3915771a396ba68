/**
 * Authoritative DNS for the footprint's names, served by PowerDNS (Debian's
 * `pdns-server` with the bind backend) on the proxy pair of every site.
 *
 * - A public name answers the site that takes its writes while that site's
 *   health URL answers, and the site that answers it read-only (the standby)
 *   otherwise: a PowerDNS LUA record `ifurlup` with two address groups, the
 *   first group whose address is up wins
 *   (https://doc.powerdns.com/authoritative/lua-records/functions.html#ifurlup).
 *   The standby never takes writes under the public name, so the switch can
 *   never make two sites writable; a promotion is the footprint edit that
 *   moves writes (`mode: promoted`), and then the name answers the promoted site only.
 * - A standby name (`<service>-<cc>.<domain>`) always answers its site: a plain A record.
 * - Every site's proxies serve every zone from the same rendered files, so
 *   the name servers agree by construction (no zone transfer; the SOA serial
 *   is a digest of the zone's records, equal on every server that has the
 *   same footprint, and different when a record changes).
 *
 * Timing of a switch, worst case (the figure the pair twin measures):
 * health checks every {@link HEALTH_CHECK_INTERVAL_SECONDS} s, each given
 * {@link HEALTH_CHECK_TIMEOUT_SECONDS} s, the packet cache holding an answer
 * for at most {@link PACKET_CACHE_SECONDS} s, a resolver for the record's TTL
 * {@link FAILOVER_TTL_SECONDS} s: 5 + 2 + 5 + 10 = 22 s, under the 30 s target.
 * Pure.
 */
import { createHash } from "node:crypto";
import type { SiteModel } from "../model/model";
import { publicProxyAddress } from "../render/policy";
import { FILE_PLACEHOLDER, RenderedFile, sshFile } from "../render/types";
import { placeAll, providerOf } from "./placement";
import type { Footprint } from "./schema";

/** TTL of a public name's answer (s): short, because a resolver keeps the old site this long after a switch. */
export const FAILOVER_TTL_SECONDS = 10;
/** TTL of a standby name (s): it changes only with a footprint edit (a promotion), which should reach users within a minute. */
export const STANDBY_TTL_SECONDS = 60;
/** TTL of the zone's own records (SOA, NS, the name servers' addresses) (s): they change with a new site, rarely. */
export const STATIC_TTL_SECONDS = 3600;
/** Negative answers (SOA minimum, RFC 2308) (s): a name added by a footprint edit is found within a minute. */
export const NEGATIVE_TTL_SECONDS = 60;
/** PowerDNS `lua-health-checks-interval` (s): how often each address of an `ifurlup` record is fetched. */
export const HEALTH_CHECK_INTERVAL_SECONDS = 5;
/** `ifurlup`'s `timeout` option (s): a site that does not answer within it is down. */
export const HEALTH_CHECK_TIMEOUT_SECONDS = 2;
/** PowerDNS `cache-ttl` (s): how long the packet cache may answer from a stale check. */
export const PACKET_CACHE_SECONDS = 5;
/** Worst case from a site's failure to the last resolver answering the other site (s), the sum above. */
export const SWITCH_BUDGET_SECONDS =
  HEALTH_CHECK_INTERVAL_SECONDS + HEALTH_CHECK_TIMEOUT_SECONDS + PACKET_CACHE_SECONDS + FAILOVER_TTL_SECONDS;

/** Where the zone files live on a name server. */
export const ZONE_DIR = "/etc/powerdns/zones";
/** The bind backend's zone list (Debian's `pdns-backend-bind` points `bind-config` at it). */
export const NAMED_CONF = "/etc/powerdns/named.conf";
/** standort's settings, read after Debian's `pdns.conf` through its `include-dir`. */
export const PDNS_CONF = "/etc/powerdns/pdns.d/standort.conf";

/** One record of a zone. */
export interface DnsRecord {
  /** Fully qualified, without the trailing dot. */
  readonly name: string;
  readonly ttl: number;
  readonly type: "SOA" | "NS" | "A" | "LUA";
  /** The record data as the zone file writes it. */
  readonly content: string;
  /** Why it is there (a comment above it). */
  readonly comment?: string;
}

export interface DnsZone {
  readonly name: string;
  readonly records: ReadonlyArray<DnsRecord>;
  /** Names left out, and why (comments at the top of the file). */
  readonly notes?: ReadonlyArray<string>;
}

/** The name of site `site`'s name server: `<site>.ns.<domain>` (no standby name `<service>-<cc>` can take it). */
export function nameServerName(site: string, domain: string): string {
  return `${site}.ns.${domain}`;
}

/** The zone a public name lives in: its parent, unless the parent is a top-level domain (then the name is its own apex). */
export function zoneOf(name: string): string {
  const parent = name.split(".").slice(1).join(".");
  return parent.includes(".") ? parent : name;
}

/** The zone that holds `name` among `zones` (longest suffix). */
function holdingZone(name: string, zones: ReadonlyArray<string>): string {
  return [...zones].sort((a, b) => b.length - a.length).find((z) => name === z || name.endsWith(`.${z}`))!;
}

const luaString = (s: string) => `'${s}'`;

/**
 * Every zone the footprint's names live in, with their records. `addresses`
 * gives each site's public proxy address where the site file does not
 * (a Hetzner Cloud site's floating IP, read from its stack); a site whose
 * address is unknown is left out of every record, with a comment saying so.
 * Zones sorted by name, records by name then type.
 */
export function dnsZones(
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
  addresses: Readonly<Record<string, string | undefined>> = {},
): DnsZone[] {
  const addressOf = (site: string): string | undefined => {
    const model = sites.find((s) => s.name === site);
    return (model ? publicProxyAddress(model) : undefined) ?? addresses[site];
  };
  const placements = placeAll(footprint, sites);
  const zoneNames = [...new Set([footprint.domain, ...placements.map((p) => zoneOf(p.service.publicName))])].sort();
  const byZone = new Map<string, DnsRecord[]>(zoneNames.map((z) => [z, []]));
  const add = (r: DnsRecord) => byZone.get(holdingZone(r.name, zoneNames))!.push(r);
  const servers = [...sites].sort((a, b) => a.name.localeCompare(b.name));
  const zoneComments: string[] = [];
  const unknown = (site: string) => `${site}'s public proxy address is not known yet (its stack has not run): left out`;

  for (const server of servers) {
    const address = addressOf(server.name);
    const name = nameServerName(server.name, footprint.domain);
    if (address) add({ name, ttl: STATIC_TTL_SECONDS, type: "A", content: address, comment: `the name server at ${server.name}` });
  }
  for (const placement of placements) {
    const service = placement.service;
    const writers = placement.sites.filter((p) => p.names.some((n) => n.name === service.publicName && n.writes)).map((p) => p.site);
    const readers = placement.sites
      .filter((p) => p.names.some((n) => n.name === service.publicName && n.reads && !n.writes))
      .map((p) => p.site);
    const groups = [writers, readers].map((g) => g.filter((s) => addressOf(s) !== undefined)).filter((g) => g.length > 0);
    const missing = [...writers, ...readers].filter((s) => addressOf(s) === undefined);
    const why = missing.map(unknown).join("; ");
    if (writers.some((s) => addressOf(s) === undefined)) {
      // Answering only the read-only site would turn a healthy primary read-only for everyone: no answer until it is known.
      zoneComments.push(`${service.publicName} (${service.name}) is not served: ${why}`);
    } else if (groups.length === 2) {
      const url = `https://${service.publicName}${service.healthPath}`;
      const list = `{${groups.map((g) => `{${g.map((s) => luaString(addressOf(s)!)).join(", ")}}`).join(", ")}}`;
      add({
        name: service.publicName,
        ttl: FAILOVER_TTL_SECONDS,
        type: "LUA",
        content: `A "ifurlup(${luaString(url)}, ${list}, {timeout=${HEALTH_CHECK_TIMEOUT_SECONDS}})"`,
        comment: `${service.name}: ${writers.join(", ")} (writes) while ${url} answers there, else ${readers.join(", ")} (read-only)${why ? `; ${why}` : ""}`,
      });
    } else if (groups.length === 1) {
      for (const site of groups[0])
        add({
          name: service.publicName,
          ttl: FAILOVER_TTL_SECONDS,
          type: "A",
          content: addressOf(site)!,
          comment: `${service.name}: only ${groups[0].join(", ")} answers it${why ? `; ${why}` : ""}`,
        });
    }
    // Every other name a site answers (its standby name): that site, always.
    for (const p of placement.sites)
      for (const n of p.names.filter((x) => x.name !== service.publicName)) {
        const address = addressOf(p.site);
        if (address)
          add({
            name: n.name,
            ttl: STANDBY_TTL_SECONDS,
            type: "A",
            content: address,
            comment: `${service.name} at ${p.site} (${n.writes ? "read-write" : "read-only"})`,
          });
      }
  }

  return zoneNames.map((zone) => {
    const records = byZone.get(zone)!;
    const ns = servers.map((s) => nameServerName(s.name, footprint.domain));
    const apex: DnsRecord[] = [
      // Serial: a digest of the records, so equal files mean equal serials on every server (no transfer uses it).
      {
        name: zone,
        ttl: STATIC_TTL_SECONDS,
        type: "SOA",
        content: `${ns[0]}. hostmaster.${zone}. ${serialOf(records, ns)} 3600 600 604800 ${NEGATIVE_TTL_SECONDS}`,
      },
      ...ns.map((n): DnsRecord => ({ name: zone, ttl: STATIC_TTL_SECONDS, type: "NS", content: `${n}.` })),
    ];
    const sorted = [...records].sort(
      (a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type) || a.content.localeCompare(b.content),
    );
    const notes = zoneComments.filter((c) => holdingZone(c.split(" ")[0], zoneNames) === zone);
    return { name: zone, records: [...apex, ...sorted], ...(notes.length > 0 ? { notes } : {}) };
  });
}

/** A 31-bit serial from the records (RFC 1982 serial arithmetic never sees it decrease between equal inputs). */
function serialOf(records: ReadonlyArray<DnsRecord>, ns: ReadonlyArray<string>): number {
  const digest = createHash("sha256")
    .update(JSON.stringify([records.map((r) => [r.name, r.ttl, r.type, r.content]), ns]))
    .digest();
  return digest.readUInt32BE(0) & 0x7fffffff || 1;
}

/** The zone file (RFC 1035 master file format, LUA records as PowerDNS reads them). */
export function renderZone(zone: DnsZone, source: string): string {
  const lines = [
    `; standort: zone ${zone.name}, rendered from ${source}; do not edit.`,
    ...(zone.notes ?? []).map((n) => `; ${n}`),
    `$ORIGIN ${zone.name}.`,
  ];
  for (const r of zone.records) {
    if (r.comment) lines.push(`; ${r.comment}`);
    lines.push(`${r.name}.\t${r.ttl}\tIN\t${r.type}\t${r.content}`);
  }
  return lines.join("\n") + "\n";
}

/** The bind backend's zone list. */
export function renderNamedConf(zones: ReadonlyArray<DnsZone>, source: string): string {
  return [
    `// standort: the zones this name server serves, rendered from ${source}; do not edit.`,
    ...zones.map((z) => `zone "${z.name}" { type master; file "${ZONE_DIR}/${z.name}.zone"; };`),
  ]
    .join("\n")
    .concat("\n");
}

/**
 * standort's PowerDNS settings (pdns.conf(5), doc.powerdns.com settings):
 * LUA records on; any address (the proxy VIP moves between the members, the
 * server answers on whichever holds it); the health-check interval and caches
 * that bound the switch time; no zone transfers.
 */
export function renderPdnsConf(): string {
  return [
    "# standort: PowerDNS settings of the site's name server; do not edit.",
    "# Bound to any address: the member that takes over the proxy VIP answers at once.",
    "local-address=0.0.0.0",
    "local-port=53",
    "enable-lua-records=yes",
    `lua-health-checks-interval=${HEALTH_CHECK_INTERVAL_SECONDS}`,
    `# Worst-case switch: interval ${HEALTH_CHECK_INTERVAL_SECONDS} s + timeout ${HEALTH_CHECK_TIMEOUT_SECONDS} s + packet cache ${PACKET_CACHE_SECONDS} s + TTL ${FAILOVER_TTL_SECONDS} s = ${SWITCH_BUDGET_SECONDS} s.`,
    `cache-ttl=${PACKET_CACHE_SECONDS}`,
    "# Every server renders the zones itself: nobody transfers them.",
    "disable-axfr=yes",
    "version-string=anonymous",
    "",
  ].join("\n");
}

/**
 * The name server's files for one proxy host: settings, zone list and zones.
 * Each carries PowerDNS's own check: `pdns_server --config=check` with the
 * staged settings, `pdnsutil check-zone` on a staged zone.
 */
export function dnsHostFiles(
  footprint: Footprint,
  sites: ReadonlyArray<SiteModel>,
  addresses: Readonly<Record<string, string | undefined>> = {},
): RenderedFile[] {
  const source = "sites/footprint.yaml and the site files";
  const zones = dnsZones(footprint, sites, addresses);
  return [
    sshFile(PDNS_CONF, renderPdnsConf(), {
      check: { command: ["sh", "-c", PDNS_CONF_CHECK, "pdns-check", FILE_PLACEHOLDER] },
      reload: ["systemctl", "restart", "pdns"],
      healthCheck: ["systemctl", "is-active", "--quiet", "pdns"],
    }),
    ...zones.map((z) =>
      sshFile(`${ZONE_DIR}/${z.name}.zone`, renderZone(z, source), {
        check: { command: ["sh", "-c", ZONE_CHECK, "zone-check", z.name, FILE_PLACEHOLDER] },
        reload: ["pdns_control", "bind-reload-now", z.name],
      }),
    ),
    // After the zones: the list names their files, which must exist when it is read.
    sshFile(NAMED_CONF, renderNamedConf(zones, source), { reload: ["pdns_control", "rediscover"] }),
  ];
}

/** Checks staged settings: PowerDNS parses them with a bind backend of no zones (`--config=check` exits non-zero on an error). */
const PDNS_CONF_CHECK = [
  "set -e",
  "d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT",
  ': > "$d/named.conf"',
  'cp "$1" "$d/standort.conf"',
  'printf "launch=bind\\nbind-config=%s/named.conf\\ninclude-dir=%s/inc\\n" "$d" "$d" > "$d/pdns.conf"',
  'mkdir "$d/inc" && mv "$d/standort.conf" "$d/inc/"',
  'pdns_server --config-dir="$d" --socket-dir="$d" --config=check',
].join("\n");

/** Checks a staged zone: `pdnsutil check-zone` with a bind backend holding only it, LUA records on. */
const ZONE_CHECK = [
  "set -e",
  "d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT",
  'printf \'zone "%s" { type master; file "%s"; };\\n\' "$1" "$2" > "$d/named.conf"',
  'printf "launch=bind\\nbind-config=%s/named.conf\\nenable-lua-records=yes\\n" "$d" > "$d/pdns.conf"',
  'out=$(pdnsutil --config-dir="$d" check-zone "$1" 2>&1) || { echo "$out" >&2; exit 1; }',
  'echo "$out"',
  // check-zone exits 0 with errors counted in its last line on some releases: refuse any error it reports.
  'echo "$out" | grep -q " 0 errors" || { echo "$out" >&2; exit 1; }',
].join("\n");

/**
 * Problems with where the name servers run: every site's proxies serve the
 * zones, so the sites must span two providers at least, or one provider's
 * outage takes every name server of the footprint with it.
 */
export function nameServerProblems(sites: ReadonlyArray<SiteModel>): string[] {
  const providers = new Set(sites.map(providerOf));
  return providers.size >= 2 || sites.length === 0
    ? []
    : [
        `the name servers run on every site's proxies, and all sites (${sites.map((s) => s.name).join(", ")}) are at ${[...providers][0]}: add a site at another provider`,
      ];
}
