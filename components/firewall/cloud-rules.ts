/**
 * The provider cloud firewall's rules, derived from the one zone policy
 * (lib/render/policy.ts): a cloud firewall filters what arrives at the hosts'
 * public interfaces from outside the site, so it takes the rules whose source
 * is outside (internet, management allowlist, BGP peers). Everything else the
 * hosts' own packet filter enforces. Pure.
 */
import { Role, ROLES } from "../../lib/model/schema";
import type { ZoneRule } from "../../lib/render/policy";

/** One inbound rule of a provider firewall (the shape Hetzner Cloud takes). */
export interface CloudFirewallRule {
  readonly direction: "in";
  readonly protocol: "tcp" | "udp" | "icmp";
  /** A port or `from-to` range; `any` for every port; absent for icmp. */
  readonly port?: string;
  readonly sourceIps: ReadonlyArray<string>;
  /** The zone rule's name, so a cloud rule traces back to the policy. */
  readonly description: string;
}

/** Zones outside the site: their traffic reaches the hosts' public interfaces. */
const OUTSIDE = new Set(["internet", "allowlist", "bgp-peer"]);
const ANY_IPV4 = "0.0.0.0/0";

/** Consecutive ports merged into `from-to` ranges (the provider takes one port or range per rule). */
export function portRanges(ports: ReadonlyArray<number>): string[] {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const ranges: string[] = [];
  let start: number | undefined;
  let previous: number | undefined;
  for (const p of [...sorted, Number.NaN]) {
    if (start !== undefined && previous !== undefined && p === previous + 1) {
      previous = p;
      continue;
    }
    if (start !== undefined && previous !== undefined) ranges.push(start === previous ? String(start) : `${start}-${previous}`);
    start = p;
    previous = p;
  }
  return ranges;
}

/**
 * The roles whose public interface receives a rule's traffic: a forwarded
 * rule arrives at the edge firewall, which passes it on; any other arrives
 * at its target hosts directly.
 */
export function receivingRoles(rule: ZoneRule): Role[] {
  return rule.forwarded ? ["firewall"] : [...rule.targets];
}

/** The cloud firewall rules for one role's servers, in policy order. */
export function cloudFirewallRules(policy: ReadonlyArray<ZoneRule>, role: Role): CloudFirewallRule[] {
  const result: CloudFirewallRule[] = [];
  for (const rule of policy) {
    if (!OUTSIDE.has(rule.from.kind) || !receivingRoles(rule).includes(role)) continue;
    const sourceIps = rule.sources.length > 0 ? [...rule.sources] : [ANY_IPV4];
    const protocols = rule.protocol === "any" ? (["tcp", "udp", "icmp"] as const) : rule.protocol === "vrrp" ? [] : [rule.protocol];
    for (const protocol of protocols) {
      if (protocol === "icmp") {
        result.push({ direction: "in", protocol, sourceIps, description: rule.name });
        continue;
      }
      const ports = rule.protocol === "any" || rule.ports.length === 0 ? ["any"] : portRanges(rule.ports);
      for (const port of ports) result.push({ direction: "in", protocol, port, sourceIps, description: rule.name });
    }
  }
  return result;
}

/** Cloud firewall rules for every role. */
export function cloudFirewallRulesByRole(policy: ReadonlyArray<ZoneRule>): Record<Role, CloudFirewallRule[]> {
  return Object.fromEntries(ROLES.map((role) => [role, cloudFirewallRules(policy, role)])) as Record<Role, CloudFirewallRule[]>;
}
