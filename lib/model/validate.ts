/**
 * Validation of all site files together: the per-file schema, the rules that
 * span files (names, codes, prefixes, partners, host names) and the address
 * plan of each site. Every problem becomes one line that names the file, the
 * field path and the rule, so an operator can fix all of them in one pass.
 */
import { z } from "zod";
import { cidr, overlaps, parseCidr, PRIVATE_RANGES, containsCidr, reservedRangeOf, parseAddress, containsAddress } from "../net/ipv4";
import { SiteFile, SiteFileSchema } from "./schema";
import { SiteModel, buildSiteModel } from "./model";

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

/** Formats a zod path as `a.b[2].c`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map((part, i) => (typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${String(part)}`)).join("");
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
        return issue.keys.map(
          (key) => `${file}: ${where === "(top level)" ? key : `${where}.${key}`}: unknown key (check the spelling; see ${schemaFile})`,
        );
      case "invalid_type":
        if (issue.input === undefined) return [`${file}: ${where}: is required (expected ${issue.expected})`];
        return [`${file}: ${where}: expected ${issue.expected}, got ${describe(issue.input)}`];
      case "invalid_union": {
        const union = issue as { note?: string; options?: unknown[]; input?: unknown };
        if (union.note === "No matching discriminator" && union.options) {
          // zod puts the discriminator key in the path and the enclosing object in `input`.
          const key = issue.path[issue.path.length - 1];
          const given = (union.input as Record<PropertyKey, unknown> | undefined)?.[key];
          return [`${file}: ${where}: ${describe(given)} must be one of ${union.options.map(String).join(", ")}`];
        }
        return [`${file}: ${where}: ${issue.message}`];
      }
      case "invalid_value":
        // Long lists (country codes) carry their own message; short ones are spelled out.
        if (issue.values.length > 12) return [`${file}: ${where}: ${issue.message}`];
        return [`${file}: ${where}: ${describe(issue.input)} must be one of ${issue.values.map((v) => String(v)).join(", ")}`];
      default:
        return [`${file}: ${where}: ${issue.message}`];
    }
  });
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value);
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
      if (site.provider.kind === "hcloud") {
        problems.push(`${file}: public.mode: Hetzner Cloud cannot route an own prefix (no BYOIP): use mode: provider-failover-ips`);
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
      if (site.provider.kind === "preprovisioned" && !site.public.addresses) {
        problems.push(`${file}: public.addresses: is required: list the failover IPs ${site.provider.name} handed over (proxy, nat)`);
      }
      if (site.provider.kind === "hcloud" && site.public.addresses) {
        problems.push(`${file}: public.addresses: Hetzner Cloud assigns floating IPs at creation: remove public.addresses`);
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

    if (site.provider.kind === "preprovisioned") {
      site.provider.hosts.forEach((host, i) => {
        const other = seen.host.get(host.name);
        if (other) problems.push(`${file}: provider.hosts[${i}].name: ${host.name} is already used by ${other}`);
        else seen.host.set(host.name, file);
      });
    }
  }

  for (const { file, site } of parsed) {
    if (site.partner === site.name) problems.push(`${file}: partner: ${site.partner} is this site itself: name another site`);
    else if (!siteNames.includes(site.partner)) {
      problems.push(`${file}: partner: ${site.partner} does not exist (known sites: ${[...siteNames].sort().join(", ")})`);
    }
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
