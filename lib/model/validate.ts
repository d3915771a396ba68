/**
 * Validation of all site files together: the per-file schema, the rules that
 * span files (names, codes, prefixes, partners, host names) and the address
 * plan of each site. Every problem becomes one line that names the file, the
 * field path and the rule, so an operator can fix all of them in one pass.
 */
import { z } from "zod";
import { cidr, overlaps, parseCidr, PRIVATE_RANGES, containsCidr, reservedRangeOf, parseAddress, containsAddress } from "../net/ipv4";
import { SiteFile, SiteFileSchema, shown } from "./schema";
import { SiteModel, buildSiteModel, segmentRequests } from "./model";
import { adapterOf } from "../providers/registry";
import { partnerProblems } from "./partners";

/** A site file as read from disk: its repository-relative path and parsed YAML. */
export interface SiteDocument {
  readonly file: string;
  readonly data: unknown;
}

/** Thrown when input is invalid; `problems` holds one line per problem. */
export class InputError extends Error {
  constructor(readonly problems: ReadonlyArray<string>) {
    super(`invalid input:\n${problems.join("\n")}`);
    this.name = "InputError";
  }
}

/** A key that a path shows as `.key`; any other key is shown quoted, `["a key"]`, so the path stays one unambiguous line. */
const PLAIN_KEY = /^[A-Za-z_$][\w$-]{0,63}$/;

/** Formats a zod path as `a.b[2].c` (`a["odd key"]` for a key that is not a plain name). */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, i) => {
      if (typeof part === "number") return `[${part}]`;
      const key = String(part);
      if (PLAIN_KEY.test(key)) return `${i === 0 ? "" : "."}${key}`;
      return `[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`;
    })
    .join("");
}

/**
 * Turns zod issues into `<file>: <path>: <rule>` lines with messages an operator can act on.
 * @param schemaFile the JSON Schema an unknown key's message points to. @default the site schema
 */
export function formatIssues(
  file: string,
  issues: ReadonlyArray<z.core.$ZodIssue>,
  schemaFile = "sites/schema/site.schema.json",
): string[] {
  return issues.flatMap((issue) => {
    const where = formatPath(issue.path) || "(top level)";
    switch (issue.code) {
      case "unrecognized_keys":
        return issue.keys.map((key) => `${file}: ${formatPath([...issue.path, key])}: unknown key (check the spelling; see ${schemaFile})`);
      case "invalid_type":
        if (issue.input === undefined) return [`${file}: ${where}: is required (expected ${issue.expected})`];
        return [`${file}: ${where}: expected ${issue.expected}, got ${describe(issue.input)}`];
      case "invalid_union": {
        const union = issue as { note?: string; options?: unknown[]; input?: unknown };
        if (union.note === "No matching discriminator" && union.options) {
          // zod puts the discriminator key in the path and the enclosing object in `input`.
          const key = issue.path[issue.path.length - 1];
          const given = (union.input as Record<PropertyKey, unknown> | undefined)?.[key];
          const options = union.options.map(String).join(", ");
          if (given === undefined) return [`${file}: ${where}: is required (one of ${options})`];
          return [`${file}: ${where}: ${describe(given)} must be one of ${options}`];
        }
        return [`${file}: ${where}: ${issue.message}`];
      }
      case "invalid_value":
        // Long lists (country codes) carry their own message; short ones are spelled out.
        if (issue.values.length > 12) return [`${file}: ${where}: ${issue.input === undefined ? "is required: " : ""}${issue.message}`];
        if (issue.input === undefined) return [`${file}: ${where}: is required (one of ${issue.values.map((v) => String(v)).join(", ")})`];
        return [`${file}: ${where}: ${describe(issue.input)} must be one of ${issue.values.map((v) => String(v)).join(", ")}`];
      case "too_big":
      case "too_small":
        return [`${file}: ${where}: ${sizeMessage(issue)}`];
      default:
        return [`${file}: ${where}: ${issue.message}`];
    }
  });
}

/** zod's own size messages ("Too big: expected number to be <=200") restated with what to write; a schema's own message is kept. */
function sizeMessage(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  if (!/^Too (big|small):/.test(issue.message)) return issue.message;
  const limit = Number(issue.code === "too_big" ? issue.maximum : issue.minimum);
  const inclusive = issue.inclusive !== false;
  const bound = issue.code === "too_big" ? (inclusive ? limit : limit - 1) : inclusive ? limit : limit + 1;
  const input = (issue as { input?: unknown }).input;
  switch (issue.origin) {
    case "number":
    case "int":
      return issue.code === "too_big"
        ? `${shown(input)} is more than allowed: set ${bound} or less`
        : `${shown(input)} is less than allowed: set ${bound} or more`;
    case "array":
    case "set":
      return issue.code === "too_big" ? `lists too many entries: list at most ${bound}` : `lists too few entries: list at least ${bound}`;
    case "string":
      return issue.code === "too_big"
        ? `is too long: use at most ${bound} characters`
        : bound <= 1
          ? "must not be empty"
          : `is too short: use at least ${bound} characters`;
    default:
      return issue.message;
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  return shown(value);
}

interface ParsedSite {
  readonly file: string;
  readonly site: SiteFile;
}

/** Rules that need every site file at once. */
export function crossSiteProblems(parsed: ReadonlyArray<ParsedSite>, siteNames: ReadonlyArray<string>): string[] {
  const problems: string[] = [];
  const seen = {
    name: new Map<string, string>(),
    code: new Map<string, string>(),
    host: new Map<string, string>(),
  };
  const publicPrefixes: Array<{ file: string; text: string }> = [];
  const supernets: Array<{ file: string; text: string }> = [];

  for (const { file, site } of parsed) {
    const base = /([^/]+)\.ya?ml$/.exec(file)?.[1];
    if (base !== undefined && base !== site.name) problems.push(`${file}: name: ${site.name} must equal the file name (${base})`);
    const adapter = adapterOf(site);
    for (const key of ["name", "code"] as const) {
      const other = seen[key].get(site[key]);
      if (other) problems.push(`${file}: ${key}: ${site[key]} is already used by ${other}`);
      else seen[key].set(site[key], file);
    }

    if (site.public.mode === "own-prefix") {
      const text = site.public.prefix;
      const reserved = reservedRangeOf(cidr(text));
      if (reserved)
        problems.push(`${file}: public.prefix: ${text} lies in a reserved range (${reserved}): use a public prefix the operator holds`);
      for (const other of publicPrefixes) {
        if (overlaps(cidr(other.text), cidr(text)))
          problems.push(`${file}: public.prefix: ${text} overlaps ${other.text} of ${other.file}`);
      }
      publicPrefixes.push({ file, text });
      if (!adapter.ownPrefix.routable) {
        problems.push(`${file}: public.mode: own-prefix is not possible here: ${adapter.ownPrefix.how}: use mode: provider-failover-ips`);
      }
      const routing = site.public.routing;
      const hops =
        routing.kind === "static"
          ? [{ path: "public.routing.nextHop", address: routing.nextHop }]
          : routing.peers.map((p, i) => ({ path: `public.routing.peers[${i}].address`, address: p.address }));
      for (const hop of hops) {
        if (containsAddress(cidr(text), parseAddress(hop.address)!)) {
          problems.push(
            `${file}: ${hop.path}: ${hop.address} lies inside the routed prefix ${text}: the next hop must be a provider-side address`,
          );
        }
      }
    }

    if (site.public.mode === "provider-failover-ips") {
      if (adapter.failoverIps === "declared" && !site.public.addresses) {
        problems.push(`${file}: public.addresses: is required: list the failover IPs ${adapter.id} handed over (proxy, nat)`);
      }
      if (adapter.failoverIps === "assigned" && site.public.addresses) {
        problems.push(
          `${file}: public.addresses: ${adapter.describe(site.provider)} assigns the failover IPs when the stack creates them: remove public.addresses`,
        );
      }
      if (site.public.addresses && site.public.addresses.proxy === site.public.addresses.nat) {
        problems.push(
          `${file}: public.addresses.nat: ${site.public.addresses.nat} is also the proxy address: the proxy and NAT need one failover IP each`,
        );
      }
    }

    const supernet = cidr(site.network.supernet);
    if (!PRIVATE_RANGES.some((range) => containsCidr(range, supernet))) {
      problems.push(
        `${file}: network.supernet: ${site.network.supernet} must lie in a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)`,
      );
    }
    for (const other of supernets) {
      if (overlaps(cidr(other.text), supernet)) {
        problems.push(
          `${file}: network.supernet: ${site.network.supernet} overlaps ${other.text} of ${other.file}: sites are meshed, give each its own supernet`,
        );
      }
    }
    supernets.push({ file, text: site.network.supernet });

    site.management.allowlist.forEach((entry, i) => {
      if (parseCidr(entry)!.length === 0) {
        problems.push(
          `${file}: management.allowlist[${i}]: ${entry} would open management to the whole internet: list the operator's own prefixes`,
        );
      }
    });

    const origin = adapter.hosts;
    if (origin.kind === "handed-over") {
      const hosts = origin.hosts(site.provider);
      hosts.forEach((host, i) => {
        const other = seen.host.get(host.name);
        const where = other === file ? `provider.hosts[${hosts.findIndex((h) => h.name === host.name)}]` : other;
        if (other) problems.push(`${file}: provider.hosts[${i}].name: ${host.name} is already used by ${where}`);
        else seen.host.set(host.name, file);
      });
    }
  }

  problems.push(...addressProblems(parsed), ...providerLimitProblems(parsed));

  // A site is known by its file name (a name that differs from it is a problem of its own).
  problems.push(...partnerProblems(parsed, siteNames));
  return problems;
}

/** One address a site file gives outside the site's private supernet: a host's, a failover IP, a next hop or a BGP peer. */
interface ProviderSideAddress {
  readonly file: string;
  readonly site: SiteFile;
  readonly path: string;
  readonly text: string;
  readonly value: number;
  /** Addresses the site holds (hosts, failover IPs, the next hop) are each one site's; a BGP peer is the provider's router. */
  readonly held: boolean;
  /** What the address is, for messages: `vie-fw-1's address`, `the proxy failover IP`. */
  readonly what: string;
}

/** Every provider-side address of a site file, in file order. */
function providerSideAddresses(file: string, site: SiteFile): ProviderSideAddress[] {
  const entries: Array<Omit<ProviderSideAddress, "file" | "site" | "value">> = [];
  const origin = adapterOf(site).hosts;
  if (origin.kind === "handed-over") {
    origin
      .hosts(site.provider)
      .forEach((host, i) =>
        entries.push({ path: `provider.hosts[${i}].address`, text: host.address, held: true, what: `${host.name}'s address` }),
      );
  }
  if (site.public.mode === "own-prefix") {
    const routing = site.public.routing;
    if (routing.kind === "static")
      entries.push({
        path: "public.routing.nextHop",
        text: routing.nextHop,
        held: true,
        what: `the static next hop of ${site.public.prefix}`,
      });
    else
      routing.peers.forEach((peer, i) =>
        entries.push({ path: `public.routing.peers[${i}].address`, text: peer.address, held: false, what: `BGP peer ${peer.name}` }),
      );
  } else if (site.public.addresses && adapterOf(site).failoverIps === "declared") {
    entries.push({ path: "public.addresses.proxy", text: site.public.addresses.proxy, held: true, what: "the proxy failover IP" });
    entries.push({ path: "public.addresses.nat", text: site.public.addresses.nat, held: true, what: "the NAT failover IP" });
  }
  return entries.map((e) => ({ ...e, file, site, value: parseAddress(e.text)! }));
}

/**
 * Rules for the addresses a site file gives outside its supernet (hosts,
 * failover IPs, next hop, BGP peers): none lies in a site's supernet (the
 * segments, gateways and VIPs live there, and sites are meshed) or in an own
 * prefix (routed to the site that holds it); the addresses a site holds are
 * each used once, across all sites where they are public (private provider
 * LANs may repeat at different providers); a failover IP is public, because
 * customers reach the site on it. Addresses the plan derives inside the
 * supernet and the own prefix are checked by `buildSiteModel`.
 */
export function addressProblems(parsed: ReadonlyArray<ParsedSite>): string[] {
  const problems: string[] = [];
  const seen: ProviderSideAddress[] = [];
  for (const { file, site } of parsed) {
    for (const entry of providerSideAddresses(file, site)) {
      const at = `${file}: ${entry.path}: ${entry.text}`;
      const ownHop = !entry.held || entry.path === "public.routing.nextHop";
      const supernet = parsed.find((p) => containsAddress(cidr(p.site.network.supernet), entry.value));
      const prefix = parsed.find((p) => p.site.public.mode === "own-prefix" && containsAddress(cidr(p.site.public.prefix), entry.value));
      if (supernet) {
        const whose = supernet.file === file ? "this site's supernet" : `the supernet of ${supernet.file}`;
        problems.push(
          `${at} lies inside ${supernet.site.network.supernet}, ${whose}: a provider-side address must lie outside every site's supernet (segments, gateways and VIPs live there)`,
        );
        continue;
      }
      // An own-prefix site's next hop or peer inside its own prefix has its own rule (crossSiteProblems).
      if (prefix && !(ownHop && prefix.file === file)) {
        const own = prefix.site.public.mode === "own-prefix" ? prefix.site.public.prefix : "";
        const whose = prefix.file === file ? "this site's own prefix" : `the own prefix of ${prefix.file}`;
        problems.push(
          `${at} lies inside ${own}, ${whose}: a provider-side address must lie outside every own prefix (it is routed to the site that holds it)`,
        );
        continue;
      }
      if (entry.path.startsWith("public.addresses.")) {
        const reserved = reservedRangeOf({ network: entry.value, length: 32 });
        const use = entry.path.endsWith("proxy") ? "customers reach the site on it" : "the site's outbound traffic leaves from it";
        if (reserved) {
          problems.push(`${at} lies in a reserved range (${reserved}): ${use}: list the public failover IP the provider handed over`);
          continue;
        }
      }
      const isPrivate = reservedRangeOf({ network: entry.value, length: 32 }) !== undefined;
      const earlier = seen.find(
        (other) =>
          other.value === entry.value &&
          (other.held || entry.held) &&
          (other.file === file || !isPrivate) &&
          // proxy and NAT failover IPs of one site have their own rule (crossSiteProblems).
          !(other.file === file && other.path.startsWith("public.addresses.") && entry.path.startsWith("public.addresses.")),
      );
      if (earlier) {
        const where = earlier.file === file ? earlier.path : `${earlier.path} of ${earlier.file}`;
        problems.push(
          `${at} is already ${earlier.what} (${where}): give each host, failover IP and next hop its own address, and no BGP peer one of theirs`,
        );
        continue;
      }
      seen.push(entry);
    }
  }
  return problems;
}

/**
 * Provider rules and limits a site file can break, each owned by the
 * provider's adapter (`lib/providers`), checked before anything is planned.
 */
export function providerLimitProblems(parsed: ReadonlyArray<ParsedSite>): string[] {
  const problems: string[] = [];
  for (const { file, site } of parsed) {
    problems.push(...adapterOf(site).siteProblems(site, file, { segments: segmentRequests(site) }));
  }
  return problems;
}

/**
 * Validates every site document and builds the model of each valid site.
 * `siteNames` lists every site file present (also those that failed to
 * parse), so a partner is not reported missing because its file is broken.
 * Returns all problems of all files; a caller must not register resources
 * unless `problems` is empty.
 */
export function validateSites(
  documents: ReadonlyArray<SiteDocument>,
  siteNames: ReadonlyArray<string> = documents.map((d) => /([^/]+)\.ya?ml$/.exec(d.file)?.[1] ?? d.file),
): { sites: SiteModel[]; problems: string[] } {
  const problems: string[] = [];
  const parsed: ParsedSite[] = [];
  for (const { file, data } of documents) {
    const result = SiteFileSchema.safeParse(data, { reportInput: true });
    if (result.success) parsed.push({ file, site: result.data });
    else problems.push(...formatIssues(file, result.error.issues));
  }
  // A partner counts as existing when its file exists, even if that file has problems of its own.
  problems.push(...crossSiteProblems(parsed, siteNames));
  const sites: SiteModel[] = [];
  for (const { file, site } of parsed) {
    const built = buildSiteModel(file, site);
    problems.push(...built.problems.map((p) => `${file}: ${p.path}: ${p.message}`));
    if (built.model) sites.push(built.model);
  }
  return { sites: sites.sort((a, b) => a.name.localeCompare(b.name)), problems };
}
