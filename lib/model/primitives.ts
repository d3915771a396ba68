/**
 * The field rules every input schema is built from (names, addresses,
 * prefixes, one-line texts, roles and segment names), apart from the site
 * file's schema so that the provider adapters (`lib/providers`) build their
 * own provider schemas from them without importing the site schema they are
 * part of.
 */
import { z } from "zod";
import { nonUnicastKind, parseAddress, parseCidr } from "../net/ipv4";

/** Lower-case name used as a key in resource names: stable, DNS-safe. */
export const slug = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/, "must be lower-case letters, digits and dashes (2–32 characters, starting with a letter)");

/** Longest value a message quotes in full; longer ones are cut, so a problem stays one short line. */
export const MAX_SHOWN = 64;

/**
 * A value from a site file as a message quotes it: a short token without
 * spaces as it is (`198.18.4.0/24`), anything else JSON-quoted and cut to
 * `MAX_SHOWN` characters, so every problem stays exactly one line.
 */
export function shown(value: unknown): string {
  if (typeof value === "string") {
    if (/^[\x21-\x7e]+$/.test(value) && value.length <= MAX_SHOWN) return value;
    return JSON.stringify(value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value);
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `a ${typeof value}`;
}

export const ipv4 = z.string().refine((v) => parseAddress(v) !== undefined, {
  error: (issue) => `${shown(issue.input)} is not an IPv4 address (a.b.c.d)`,
});

/**
 * An IPv4 address that names one host: not unspecified, broadcast, loopback,
 * link-local, multicast or reserved (`nonUnicastKind`). `fix` says what to
 * write instead.
 */
export function unicastAddress(fix: string) {
  return ipv4.superRefine((value, ctx) => {
    const address = parseAddress(value);
    const kind = address === undefined ? undefined : nonUnicastKind(address);
    if (kind) ctx.addIssue({ code: "custom", message: `${value} is ${kind}, not a host address: ${fix}` });
  });
}

/** An aligned IPv4 prefix in CIDR notation, optionally of a fixed length. */
export function prefix(length?: { min?: number; max?: number; exact?: number }) {
  return z.string().superRefine((value, ctx) => {
    const parsed = parseCidr(value);
    if (!parsed) {
      ctx.addIssue({ code: "custom", message: `${shown(value)} is not an IPv4 prefix in CIDR notation (a.b.c.d/len)` });
      return;
    }
    if (length?.exact !== undefined && parsed.length !== length.exact) {
      ctx.addIssue({ code: "custom", message: `${value} must be a /${length.exact}` });
      return;
    }
    if (length?.min !== undefined && parsed.length < length.min) {
      ctx.addIssue({ code: "custom", message: `${value} is larger than allowed: use a /${length.min} or smaller` });
      return;
    }
    if (length?.max !== undefined && parsed.length > length.max) {
      ctx.addIssue({ code: "custom", message: `${value} is smaller than allowed: use a /${length.max} or larger` });
      return;
    }
    if (!parsed.aligned) {
      ctx.addIssue({ code: "custom", message: `${value} has host bits set: the network address of a /${parsed.length} must be aligned` });
    }
  });
}

export const ROLES = ["firewall", "proxy", "virtualization", "storage"] as const;
export type Role = (typeof ROLES)[number];
/** Roles that always come as an active/passive pair. */
export const PAIRED_ROLES = ["firewall", "proxy", "storage"] as const;
export type PairedRole = (typeof PAIRED_ROLES)[number];

export const STANDARD_SEGMENTS = ["dmz", "app", "data", "mgmt"] as const;
/** One heartbeat segment per pair, `hb-<role>`. */
export const HEARTBEAT_SEGMENTS: Readonly<Record<PairedRole, string>> = {
  firewall: "hb-firewall",
  proxy: "hb-proxy",
  storage: "hb-storage",
};

/**
 * Names a segment may not take, because every host names the segment's link
 * after it (`lib/render/interfaces.ts`) and these names belong to links the
 * hosts already have: the loopback, the NICs (`eth0`, `eth1`; on Hetzner Cloud
 * `ens10` or `enp7s0`, and other predictable names) and the site-to-site
 * tunnels (`wg-<code>-<code>`, `lib/footprint/wireguard.ts`).
 */
export const RESERVED_LINK_NAME = /^(lo|eth[0-9]+|en[opsx][0-9][a-z0-9]*|wg-.*)$/;

/** Free text printed in the plan: one line, at most this many characters. */
export const MAX_TEXT = 200;

/** Free text (a description, a reason): one line the plan can print, of a sensible length. */
export const text = z
  .string()
  .max(MAX_TEXT, `is longer than ${MAX_TEXT} characters: keep it to one short line`)
  .regex(/^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$/, "must be one line without control characters");

/** A DNS host name in lower case (RFC 1123 labels). */
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A time source: a DNS name or a host address. */
export const timeSource = z.string().superRefine((value, ctx) => {
  const address = parseAddress(value);
  const kind = address === undefined ? undefined : nonUnicastKind(address);
  if (kind) ctx.addIssue({ code: "custom", message: `${value} is ${kind}, not a host address: list the NTP server's own address` });
  else if (address === undefined && !HOSTNAME.test(value))
    ctx.addIssue({
      code: "custom",
      message: `${shown(value)} is not a host name or IPv4 address: list each NTP server by its DNS name (lower case) or address`,
    });
});

/** Each entry of a list once: a duplicate is a problem at its own index naming the first. */
export function listedOnce(what: string, fix: string) {
  return (values: ReadonlyArray<string>, ctx: z.core.$RefinementCtx<ReadonlyArray<string>>) => {
    values.forEach((value, i) => {
      const first = values.indexOf(value);
      if (first !== i)
        ctx.addIssue({ code: "custom", path: [i], message: `${shown(value)} is already listed as ${what}[${first}]: ${fix}` });
    });
  };
}

export const handedOverHostSchema = z
  .strictObject({
    /** Host name, unique across all sites (for example `vie-fw-1`). */
    name: slug.describe("Host name, unique across all sites (for example `vie-fw-1`)."),
    role: z.enum(ROLES),
    /** The physical machine (or hypervisor) the host runs on; members of a pair must differ. */
    physical: slug.describe("The physical machine (or hypervisor) the host runs on; members of a pair must differ."),
    /** The provider-assigned primary IPv4 address the library reaches the host on. */
    address: unicastAddress("give the address the provider assigned to the host").describe(
      "The provider-assigned primary IPv4 address the library reaches the host on.",
    ),
    /** Pinned internal addresses by segment name; unpinned ones are assigned by the address plan. */
    segments: z
      .record(z.string(), unicastAddress("pin a host address inside the segment, or leave it to the address plan"))
      .optional()
      .describe("Pinned internal addresses by segment name; unpinned ones are assigned by the address plan."),
  })
  .describe("A server the provider has handed over, configured from the operating system up.");
