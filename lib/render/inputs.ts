/**
 * Input rules shared by several renderers (zod schemas whose messages name
 * the rule an operator broke). Paths in messages are relative to the model
 * (`time.servers[1]`) or to the options (`services[0].port`).
 */
import { z } from "zod";
import { Cidr, cidr, containsCidr, formatCidr, parseAddress, parseCidr } from "../net/ipv4";
import type { ProblemCollector } from "./errors";
import type { ProxiedService } from "./types";

/** A TCP/UDP port. */
export const port = z
  .number()
  .refine((p) => Number.isInteger(p) && p >= 1 && p <= 65535, { error: (issue) => `${String(issue.input)} must be between 1 and 65535` });

/** An IPv4 address in dotted-quad notation. */
export const ipv4Address = z
  .string()
  .refine((v) => parseAddress(v) !== undefined, { error: (issue) => `${JSON.stringify(issue.input)} is not an IPv4 address` });

/** An aligned IPv4 prefix. */
export const ipv4Prefix = z.string().superRefine((value, ctx) => {
  const parsed = parseCidr(value);
  if (!parsed) ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not an IPv4 prefix (a.b.c.d/len)` });
  else if (!parsed.aligned) ctx.addIssue({ code: "custom", message: `${value} has host bits set` });
});

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A DNS host name (lower case), or an IPv4 address. */
export const hostOrAddress = z.string().refine((v) => HOSTNAME.test(v) || parseAddress(v) !== undefined, {
  error: (issue) => `${JSON.stringify(issue.input)} is not a host name or IPv4 address`,
});

/** A DNS name as used in TLS SNI: lower case, optionally with a leading `*.` wildcard. */
export const sniHostname = z.string().refine((v) => HOSTNAME.test(v.startsWith("*.") ? v.slice(2) : v) && v.includes("."), {
  error: (issue) => `${JSON.stringify(issue.input)} is not a fully qualified lower-case host name`,
});

const SERVICE_NAME = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;

/**
 * The services the proxy pair routes: names unique, at most one default (no
 * host names), host names unique. Empty where a site answers no service yet
 * (the proxies then route nothing, see `renderHaproxyConfig`).
 */
export const servicesSchema = z
  .array(
    z.strictObject({
      name: z.string().regex(SERVICE_NAME, "must be lower-case letters, digits and dashes (2–32 characters, starting with a letter)"),
      hostnames: z.array(sniHostname),
      port,
    }),
  )
  .superRefine((services, ctx) => {
    const names = new Map<string, number>();
    const hosts = new Map<string, string>();
    let defaultService: string | undefined;
    services.forEach((s, i) => {
      const other = names.get(s.name);
      if (other !== undefined)
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `${s.name} is already the name of services[${other}]` });
      names.set(s.name, i);
      if (s.hostnames.length === 0) {
        if (defaultService)
          ctx.addIssue({
            code: "custom",
            path: [i, "hostnames"],
            message: `${s.name} and ${defaultService} both have no host names: only one service can be the default`,
          });
        defaultService = s.name;
      }
      s.hostnames.forEach((h, j) => {
        const holder = hosts.get(h);
        if (holder) ctx.addIssue({ code: "custom", path: [i, "hostnames", j], message: `${h} is already routed to ${holder}` });
        hosts.set(h, s.name);
      });
    });
  });

/** Validates services, recording problems under `services`. */
export function checkServices(
  services: ReadonlyArray<ProxiedService>,
  problems: ProblemCollector,
): ReadonlyArray<ProxiedService> | undefined {
  return problems.parse(servicesSchema, services, "services");
}

/**
 * Removes duplicates and prefixes covered by another one, sorted by address.
 * nftables refuses overlapping elements in an interval set, and a prefix
 * inside another adds nothing to an allow rule.
 */
export function mergePrefixes(prefixes: ReadonlyArray<string>): string[] {
  const parsed: Cidr[] = prefixes.map((p) => cidr(p.includes("/") ? p : `${p}/32`));
  const kept = parsed.filter((c, i) => !parsed.some((o, j) => j !== i && containsCidr(o, c) && (o.length < c.length || j < i)));
  return kept.sort((a, b) => a.network - b.network || a.length - b.length).map(formatCidr);
}
