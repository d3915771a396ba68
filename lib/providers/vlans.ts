/**
 * The standard VLAN numbering of segments on hosts that share layer 2
 * (every adapter whose segments are `vlans` and whose provider lets the
 * operator choose the ids).
 */
import type { SiteModel } from "../model/model";

/** VLAN ids of the standard and heartbeat segments; see `standardVlanId`. */
export const FIXED_VLAN_IDS: Readonly<Record<string, number>> = {
  dmz: 10,
  app: 20,
  data: 30,
  mgmt: 40,
  "hb-firewall": 51,
  "hb-proxy": 52,
  "hb-storage": 53,
};

/** First VLAN id of the extra segments. */
export const EXTRA_VLAN_BASE = 100;

/**
 * The VLAN id of a segment: fixed ids for the standard segments (dmz 10,
 * app 20, data 30, mgmt 40) and heartbeats (hb-firewall 51, hb-proxy 52,
 * hb-storage 53); extra segments get 100 plus their position among the extra
 * segments. Extra segments only ever append (the address plan's contract), so
 * an id never changes once given. Undefined for a segment the model lacks.
 */
export function standardVlanId(model: SiteModel, segment: string): number | undefined {
  // Own keys only: an extra segment named `constructor` must not find Object's.
  const fixed = Object.hasOwn(FIXED_VLAN_IDS, segment) ? FIXED_VLAN_IDS[segment] : undefined;
  if (fixed !== undefined) return model.segments.some((s) => s.name === segment) ? fixed : undefined;
  const extras = model.segments.filter((s) => s.kind === "extra");
  const index = extras.findIndex((s) => s.name === segment);
  return index < 0 ? undefined : EXTRA_VLAN_BASE + index;
}
