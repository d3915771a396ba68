/**
 * The files `npm run new-site` writes: a new location's site file (the
 * standard set of hosts, placeholders where the provider hands addresses
 * over), its stack file, and the edit that makes an existing site its
 * partner. Pure: text in, text out.
 */
import { isDeepStrictEqual } from "node:util";
import { YAMLMap, isMap, isSeq, parseDocument } from "yaml";
import type { Role } from "./primitives";
import { cidr, formatAddress } from "../net/ipv4";
import { ADAPTERS, PROVIDER_KINDS } from "../providers/registry";
import type { ProviderAdapter, ScaffoldHost, ScaffoldSite } from "../providers/adapter";

/** A provider `--provider` names: an adapter's key, and the adapter that lays out its part of the files. */
export interface ProviderChoice {
  /** What `--provider` takes: the adapter's key in the registry. */
  readonly flag: string;
  readonly adapter: ProviderAdapter;
}

/**
 * Every provider new-site lays out, from the one place that knows them: the
 * adapter registry (`PROVIDER_KINDS`). A provider whose adapter lands there is
 * known here at once; its adapter's `scaffold` writes its part of the files.
 */
export function providerChoices(): ProviderChoice[] {
  return PROVIDER_KINDS.map((flag) => ({ flag, adapter: ADAPTERS[flag] }));
}

/**
 * A new site's three-letter code, derived from its name: the first three
 * letters; where another site has that code, the first letter with two later
 * letters of the name, in order of their position; then the first two letters
 * with any letter a–z. Undefined when every candidate is taken.
 */
export function deriveCode(name: string, taken: ReadonlySet<string>): string | undefined {
  const letters = name.replace(/[^a-z]/g, "");
  const candidates: string[] = [];
  for (let i = 1; i < letters.length; i++)
    for (let j = i + 1; j < letters.length; j++) candidates.push(`${letters[0]}${letters[i]}${letters[j]}`);
  for (const c of "abcdefghijklmnopqrstuvwxyz") candidates.push(`${letters.slice(0, 2)}${c}`);
  return candidates.find((c) => c.length === 3 && !taken.has(c));
}

/** Host layout of a new site whose provider hands servers over: the standard set, pair members on different machines. */
export const PLACEHOLDER_HOSTS: ReadonlyArray<{ role: Role; short: string; n: number; machine: string; host: number }> = [
  { role: "firewall", short: "fw", n: 1, machine: "a", host: 11 },
  { role: "firewall", short: "fw", n: 2, machine: "b", host: 12 },
  { role: "proxy", short: "proxy", n: 1, machine: "a", host: 21 },
  { role: "proxy", short: "proxy", n: 2, machine: "b", host: 22 },
  { role: "storage", short: "stor", n: 1, machine: "c", host: 31 },
  { role: "storage", short: "stor", n: 2, machine: "d", host: 32 },
  { role: "virtualization", short: "virt", n: 1, machine: "c", host: 41 },
  { role: "virtualization", short: "virt", n: 2, machine: "d", host: 42 },
  { role: "virtualization", short: "virt", n: 3, machine: "e", host: 43 },
];
/** Host numbers in the placeholder block of the static next hop and of the proxy and NAT failover IPs. */
export const PLACEHOLDER_NEXT_HOP = 10;
export const PLACEHOLDER_FAILOVER_IPS = { proxy: 100, nat: 101 } as const;

export const REPLACE_ADDRESS = "replace with the address the provider handed over";

export interface SiteScaffold {
  readonly name: string;
  readonly code: string;
  readonly country: string;
  readonly provider: ProviderChoice;
  /** `--region`: what it means is the adapter's (`scaffold.region`). */
  readonly region?: string;
  readonly partner: string;
  readonly supernet: string;
  /** The own /23, where the site routes one. */
  readonly prefix?: string;
  /** The /24 the placeholder addresses come from (where the provider hands addresses over). */
  readonly placeholders?: string;
  /** The operator's management prefixes. */
  readonly allowlist: ReadonlyArray<string>;
}

/** `graz` → `Graz`, `new-york` → `New-York`. */
function title(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => `${dash}${c.toUpperCase()}`);
}

/** The standard hosts at their placeholder addresses, and the rest the adapter's lines need. */
function scaffoldSite(s: SiteScaffold): ScaffoldSite {
  const hosts: ScaffoldHost[] = s.placeholders
    ? PLACEHOLDER_HOSTS.map((h) => ({
        name: `${s.code}-${h.short}-${h.n}`,
        role: h.role,
        physical: `${s.code}-node-${h.machine}`,
        address: placeholderAddress(s, h.host),
      }))
    : [];
  return { name: s.name, title: title(s.name), region: s.region, hosts, replace: REPLACE_ADDRESS };
}

/** Host `n` of the site's placeholder block. */
function placeholderAddress(s: SiteScaffold, n: number): string {
  if (!s.placeholders) throw new Error(`${s.name} has no placeholder block: new-site hands out no provider-side address`);
  return formatAddress(cidr(s.placeholders).network + n);
}

/** The site file of a new location, in the committed files' layout and style (Prettier-clean); the provider's part is its adapter's. */
export function siteFileText(s: SiteScaffold): string {
  const { adapter } = s.provider;
  const scaffold = adapter.scaffold;
  const site = scaffoldSite(s);
  const lines: string[] = [
    "# yaml-language-server: $schema=./schema/site.schema.json",
    ...scaffold.header(site).map((l) => `# ${l}`),
    `name: ${s.name}`,
    `code: ${s.code}`,
    `country: ${s.country}`,
    `description: ${scaffold.describeSite(site.title)}; ${s.prefix ? "own /23 routed statically" : scaffold.failoverIpsName}`,
    "provider:",
    ...scaffold.provider(site).map((l) => `  ${l}`),
    "public:",
  ];
  if (s.prefix) {
    lines.push(
      "  mode: own-prefix",
      "  prefix: " + s.prefix + " # from sites/pools.yaml (prefixes): have the provider route it to the next hop",
      "  routing:",
      "    kind: static",
      `    nextHop: ${placeholderAddress(s, PLACEHOLDER_NEXT_HOP)} # replace with the failover address the provider routes the /23 to (or kind: bgp, see sites/frankfurt.yaml)`,
    );
  } else {
    lines.push("  mode: provider-failover-ips");
    if (!adapter.ownPrefix.routable) lines.push(`  reason: ${scaffold.publicReason ?? adapter.ownPrefix.how}`);
    if (adapter.failoverIps === "declared")
      lines.push(
        `  addresses: { proxy: ${placeholderAddress(s, PLACEHOLDER_FAILOVER_IPS.proxy)}, nat: ${placeholderAddress(s, PLACEHOLDER_FAILOVER_IPS.nat)} } # replace with the failover IPs the provider handed over`,
      );
  }
  lines.push(
    "network:",
    `  supernet: ${s.supernet} # from sites/pools.yaml (supernets)`,
    "roles:",
    "  virtualization: { count: 3, runtime: compose }",
    `  storage: ${scaffold.storage ?? "{ capacityGb: 2000 }"}`,
    "management:",
    `  allowlist: [${s.allowlist.join(", ")}] # the operator's prefixes, as at ${s.partner}`,
    `partner: ${s.partner}`,
    "",
  );
  return lines.join("\n");
}

/**
 * The stack file of a new location: which site it deploys, placeholders for
 * the `providerEnv` keys its failover needs (`requiredEnv`, each value the
 * adapter's placeholder), and the secrets to set, as comments.
 */
export function stackFileText(s: SiteScaffold, requiredEnv: ReadonlyArray<string>, movesFailoverIps: boolean): string {
  const scaffold = s.provider.adapter.scaffold;
  const lines = ["config:", `  standort:site: ${s.name}`];
  if (requiredEnv.length > 0) {
    lines.push(
      ...scaffold.stackComment(requiredEnv).map((l) => `  # ${l}`),
      "  standort:providerEnv:",
      ...requiredEnv.map((key) => `    ${key}: ${scaffold.envPlaceholder(key) ?? `replace-with-${key.toLowerCase().replace(/_/g, "-")}`}`),
    );
  }
  lines.push(
    "  # Secrets are set per stack, never committed in plain text:",
    "  #   pulumi config set --secret standort:sshPrivateKey < ~/.ssh/standort_deploy",
    `  #   pulumi config set --secret standort:alerting '{"kind":"webhook","url":"https://…"}'`,
    ...scaffold.secrets({ movesFailoverIps }).map((l) => `  #   ${l}`),
    "  # The offline plan substitutes a placeholder for every unset secret.",
    "",
  );
  return lines.join("\n");
}

/** The edit that makes an existing site the partner of a new one. */
export interface PartnerEdit {
  /** The partner's file after the edit (the text before it where nothing changes). */
  readonly text: string;
  /** What changed: the new site added to `standbyFor`, `partner` set, or nothing (the new site is listed already). */
  readonly change: "standbyFor" | "partner" | "none";
}

/**
 * Makes the site of `text` the partner of `newSite`: where it has a partner
 * of its own, it stands by for the new site too (`standbyFor` gains it);
 * where it has none, the new site becomes its partner. The edit is made on
 * the file's YAML document (`yaml`'s Document API), and only the changed
 * entry's text is replaced, so every comment, the key order and the
 * formatting of the rest stay byte for byte.
 * @throws Error when the file is not a mapping, or its `standbyFor` not a list
 */
export function partnerEdit(text: string, newSite: string): PartnerEdit {
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) throw new Error("the partner's file is not a mapping");
  const map = doc.contents;
  const partner = map.items.find((p) => String((p.key as { value?: unknown })?.value) === "partner");
  if (partner === undefined || (partner.value as { value?: unknown } | null)?.value === undefined) {
    doc.set("partner", newSite);
    return { text: spliceEntry(text, doc, "partner", `partner: ${newSite}`), change: "partner" };
  }
  const existing = doc.get("standbyFor", true);
  if (existing !== undefined && !isSeq(existing)) throw new Error("the partner's standbyFor is not a list");
  const listed = isSeq(existing) ? existing.items.map((i) => String((i as { value?: unknown }).value)) : [];
  if (listed.includes(newSite)) return { text, change: "none" };
  const after = [...listed, newSite];
  doc.set("standbyFor", doc.createNode(after));
  return { text: spliceEntry(text, doc, "standbyFor", `standbyFor: [${after.join(", ")}]`, "partner"), change: "standbyFor" };
}

/**
 * Writes one top-level entry of `doc` (already changed) into `text`: its old
 * lines are replaced by `line`, or `line` follows the entry `after` (else the
 * end) where it is new. Checks that the result reads as the changed document.
 */
function spliceEntry(text: string, doc: ReturnType<typeof parseDocument>, key: string, line: string, after?: string): string {
  const original = parseDocument(text);
  const map = original.contents as YAMLMap;
  const pairOf = (k: string) => map.items.find((p) => String((p.key as { value?: unknown })?.value) === k);
  const lineStart = (offset: number) => text.lastIndexOf("\n", offset - 1) + 1;
  const lineEnd = (offset: number) => {
    const end = text.indexOf("\n", offset);
    return end === -1 ? text.length : end + 1;
  };
  const old = pairOf(key);
  let result: string;
  if (old) {
    const keyRange = (old.key as { range?: [number, number, number] }).range!;
    const valueRange = (old.value as { range?: [number, number, number] } | null)?.range ?? keyRange;
    result = text.slice(0, lineStart(keyRange[0])) + `${line}\n` + text.slice(lineEnd(Math.max(valueRange[1] - 1, keyRange[0])));
  } else {
    const anchor = after !== undefined ? pairOf(after) : undefined;
    const end = anchor
      ? lineEnd(
          ((anchor.value as { range?: [number, number, number] } | null)?.range ??
            (anchor.key as { range: [number, number, number] }).range)[1] - 1,
        )
      : text.length;
    const before = text.slice(0, end);
    result = `${before}${before === "" || before.endsWith("\n") ? "" : "\n"}${line}\n${text.slice(end)}`;
  }
  const check = parseDocument(result);
  if (check.errors.length > 0 || !isDeepStrictEqual(check.toJS(), doc.toJS()))
    throw new Error(`the edit of ${key} in the partner's file did not read back as intended`);
  return result;
}
