/**
 * The files `npm run new-site` writes: a new location's site file (the
 * standard set of hosts, placeholders where the provider hands addresses
 * over), its stack file, and the edit that makes an existing site its
 * partner. Pure: text in, text out.
 */
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { YAMLMap, isMap, isSeq, parseDocument } from "yaml";
import { SiteFileSchema } from "./schema";
import { cidr, formatAddress } from "../net/ipv4";

/** A provider `--provider` names: Hetzner Cloud (`hcloud`, a `kind` of its own) or one that hands servers over (`netcup`, …). */
export interface ProviderChoice {
  /** What `--provider` takes. */
  readonly flag: string;
  /** The site file's `provider.kind`. */
  readonly kind: string;
  /** The site file's `provider.name`, for providers that hand servers over. */
  readonly name?: string;
}

interface JsonSchemaNode {
  readonly const?: unknown;
  readonly enum?: ReadonlyArray<unknown>;
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>;
  readonly oneOf?: ReadonlyArray<JsonSchemaNode>;
  readonly anyOf?: ReadonlyArray<JsonSchemaNode>;
}

/** The alternatives of the site schema's `provider`, as its JSON Schema (the generated, public form) states them. */
function providerOptions(): ReadonlyArray<JsonSchemaNode> {
  const schema = z.toJSONSchema(SiteFileSchema, { io: "input", unrepresentable: "any" }) as JsonSchemaNode;
  const provider = schema.properties?.provider;
  const options = provider?.oneOf ?? provider?.anyOf ?? (provider ? [provider] : []);
  if (options.length === 0) throw new Error("the site schema has no provider alternatives: new-site cannot list the providers");
  return options;
}

/**
 * Every provider a site file accepts, from the one place that knows them:
 * the site schema (`provider.kind`, and `provider.name` where the kind is
 * `preprovisioned`). A provider the schema learns is known here at once.
 */
export function providerChoices(): ProviderChoice[] {
  return providerOptions().flatMap((option) => {
    const kind = option.properties?.kind?.const;
    if (typeof kind !== "string") return [];
    const names = option.properties?.name?.enum;
    if (kind === "preprovisioned" && names) return names.map((name) => ({ flag: String(name), kind, name: String(name) }));
    return [{ flag: kind, kind }];
  });
}

/** Hetzner Cloud's locations as the site schema lists them (`provider.location`). */
export function hcloudLocations(): string[] {
  const hcloud = providerOptions().find((o) => o.properties?.kind?.const === "hcloud");
  return (hcloud?.properties?.location?.enum ?? []).map(String);
}

/** Providers the scaffold lays out: Hetzner Cloud and every provider that hands servers over. */
export function canScaffold(choice: ProviderChoice): boolean {
  return choice.kind === "hcloud" || choice.kind === "preprovisioned";
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

/** Host layout of a new pre-provisioned site: the standard set, pair members on different machines. */
export const PLACEHOLDER_HOSTS: ReadonlyArray<{ role: string; short: string; n: number; machine: string; host: number }> = [
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

/** What the comments call a provider. */
const PROVIDER_LABELS: Readonly<Record<string, string>> = {
  netcup: "Netcup",
  ionos: "IONOS",
  other: "another provider",
  hcloud: "Hetzner Cloud",
};
const label = (choice: ProviderChoice) => PROVIDER_LABELS[choice.name ?? choice.kind] ?? choice.name ?? choice.kind;

export const REPLACE_ADDRESS = "replace with the address the provider handed over";

export interface SiteScaffold {
  readonly name: string;
  readonly code: string;
  readonly country: string;
  readonly provider: ProviderChoice;
  /** Hetzner Cloud location, or the provider's own location label. */
  readonly region?: string;
  readonly partner: string;
  readonly supernet: string;
  /** The own /23, where the site routes one. */
  readonly prefix?: string;
  /** The /24 the placeholder addresses come from (pre-provisioned sites). */
  readonly placeholders?: string;
  /** The operator's management prefixes. */
  readonly allowlist: ReadonlyArray<string>;
}

/** `graz` → `Graz`, `new-york` → `New-York`. */
function title(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => `${dash}${c.toUpperCase()}`);
}

/** The site file of a new location, in the committed files' layout and style (Prettier-clean). */
export function siteFileText(s: SiteScaffold): string {
  const provider = label(s.provider);
  const hcloud = s.provider.kind === "hcloud";
  const at = (n: number) => formatAddress(cidr(s.placeholders!).network + n);
  const lines: string[] = ["# yaml-language-server: $schema=./schema/site.schema.json"];
  if (hcloud) {
    lines.push(
      `# ${title(s.name)}: Hetzner Cloud (${s.region}), every server created through the API.`,
      "# Hetzner Cloud cannot route an own prefix, so the site uses floating IPs.",
    );
  } else {
    lines.push(
      `# ${title(s.name)}: servers handed over by ${provider}. Written by npm run new-site: every`,
      `# address marked "replace" is a placeholder (sites/pools.yaml, placeholders)`,
      "# until the address the provider handed over replaces it.",
    );
  }
  const publicText = hcloud ? "floating IPs" : s.prefix ? "own /23 routed statically" : "provider-assigned failover IPs";
  lines.push(
    `name: ${s.name}`,
    `code: ${s.code}`,
    `country: ${s.country}`,
    `description: ${hcloud ? `Hetzner Cloud, ${title(s.name)}` : `${provider === "another provider" ? "Pre-provisioned" : provider}, ${title(s.name)}`}; ${publicText}`,
    "provider:",
  );
  if (hcloud) {
    lines.push("  kind: hcloud", `  location: ${s.region}`);
  } else {
    lines.push("  kind: preprovisioned", `  name: ${s.provider.name}`);
    if (s.region !== undefined) lines.push(`  region: ${s.region}`);
    lines.push(
      "  # Placeholders: the standard set of hosts; put each on the machine it runs on (pair members on",
      "  # different machines) and give it the address the provider handed over.",
      "  hosts:",
      ...PLACEHOLDER_HOSTS.map(
        (h) =>
          `    - { name: ${s.code}-${h.short}-${h.n}, role: ${h.role}, physical: ${s.code}-node-${h.machine}, address: ${at(h.host)} } # ${REPLACE_ADDRESS}`,
      ),
    );
  }
  lines.push("public:");
  if (s.prefix) {
    lines.push(
      "  mode: own-prefix",
      "  prefix: " + s.prefix + " # from sites/pools.yaml (prefixes): have the provider route it to the next hop",
      "  routing:",
      "    kind: static",
      `    nextHop: ${at(PLACEHOLDER_NEXT_HOP)} # replace with the failover address the provider routes the /23 to (or kind: bgp, see sites/frankfurt.yaml)`,
    );
  } else if (hcloud) {
    lines.push("  mode: provider-failover-ips", "  reason: Hetzner Cloud has no documented way to route a customer prefix (BYOIP)");
  } else {
    lines.push(
      "  mode: provider-failover-ips",
      `  addresses: { proxy: ${at(PLACEHOLDER_FAILOVER_IPS.proxy)}, nat: ${at(PLACEHOLDER_FAILOVER_IPS.nat)} } # replace with the failover IPs the provider handed over`,
    );
  }
  lines.push(
    "network:",
    `  supernet: ${s.supernet} # from sites/pools.yaml (supernets)`,
    "roles:",
    "  virtualization: { count: 3, runtime: compose }",
    "  storage: { capacityGb: 2000 }",
    "management:",
    `  allowlist: [${s.allowlist.join(", ")}] # the operator's prefixes, as at ${s.partner}`,
    `partner: ${s.partner}`,
    "",
  );
  return lines.join("\n");
}

/** Placeholder values of the `providerEnv` keys a new site needs (`requiredProviderEnv`). */
function providerEnvPlaceholder(key: string, s: SiteScaffold): string {
  if (key === "FAILOVER_MOVE_COMMAND") return `/usr/local/sbin/standort-${s.provider.name ?? s.provider.kind}-route-failover`;
  if (key === "IONOS_DATACENTER_ID") return "replace-with-the-data-center-uuid";
  if (key === "IONOS_LAN_ID") return '"replace-with-the-lan-id"';
  const nic = /^IONOS_NIC_ID_(.+)$/.exec(key);
  if (nic) return `replace-with-the-nic-uuid-of-${nic[1].toLowerCase().replace(/_/g, "-")}`;
  return `replace-with-${key.toLowerCase().replace(/_/g, "-")}`;
}

/**
 * The stack file of a new location: which site it deploys, placeholders for
 * the `providerEnv` keys its failover needs (`requiredEnv`), and the secrets
 * to set, as comments.
 */
export function stackFileText(s: SiteScaffold, requiredEnv: ReadonlyArray<string>, movesFailoverIps: boolean): string {
  const lines = ["config:", `  standort:site: ${s.name}`];
  if (requiredEnv.includes("FAILOVER_MOVE_COMMAND")) {
    lines.push(
      `  # ${label(s.provider)} moves addresses through no API the library drives: the pairs move theirs with this`,
      "  # operator-provided command (FAILOVER_ADDRESS and SELF are exported to it). Placeholder: replace it",
      "  # with the command that moves the address at the provider (see stacks/Pulumi.vienna.yaml).",
    );
  } else if (requiredEnv.length > 0) {
    lines.push(
      "  # IONOS moves the failover IPs of the LAN's IP failover group to the NIC of the member that takes over",
      "  # (PATCH /cloudapi/v6/datacenters/{dc}/lans/{lan}, ipFailover). Placeholders: replace them with the",
      "  # data center, LAN and NIC uuids of the ordered servers (IONOS DCD, or GET /datacenters/{dc}/servers).",
    );
  }
  if (requiredEnv.length > 0) {
    lines.push("  standort:providerEnv:", ...requiredEnv.map((key) => `    ${key}: ${providerEnvPlaceholder(key, s)}`));
  }
  lines.push(
    "  # Secrets are set per stack, never committed in plain text:",
    "  #   pulumi config set --secret standort:sshPrivateKey < ~/.ssh/standort_deploy",
    `  #   pulumi config set --secret standort:alerting '{"kind":"webhook","url":"https://…"}'`,
  );
  if (s.provider.kind === "hcloud")
    lines.push(
      "  #   pulumi config set --secret standort:hcloudToken <token>",
      '  #   pulumi config set standort:sshPublicKey "$(cat ~/.ssh/standort_deploy.pub)"',
    );
  if (movesFailoverIps) lines.push(`  #   pulumi config set --secret standort:providerApiToken <${label(s.provider)} token>`);
  lines.push("  # The offline plan substitutes a placeholder for every unset secret.", "");
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
