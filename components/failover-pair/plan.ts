/**
 * The active/passive settings of a pair as data: VRRP over the dedicated
 * heartbeat segment, who serves, and the takeover steps. Pure; the keepalived
 * renderer and the failover script consume it.
 */
import { PairModel } from "../../lib/model/model";

/** VRRP advertisement interval: a failed member is declared dead after three missed ones. */
export const VRRP_ADVERT_INTERVAL_SECONDS = 1;
/**
 * A member that comes back with the higher priority waits this long before it
 * takes the addresses back, so a flapping host does not flap the service.
 */
export const VRRP_PREEMPT_DELAY_SECONDS = 60;

export interface VrrpPlan {
  readonly vrid: number;
  /** Priority per serving member; the active member has the highest. */
  readonly priorities: Readonly<Record<string, number>>;
  /** The segment VRRP runs on (the pair's own heartbeat segment). */
  readonly segment: string;
  /**
   * Unicast peers per member (heartbeat addresses of the other member): the
   * providers' networks do not carry multicast reliably, unicast works on all.
   * Empty for a dissolved pair.
   */
  readonly unicastPeers: Readonly<Record<string, ReadonlyArray<string>>>;
  readonly advertIntervalSeconds: number;
  readonly preemptDelaySeconds: number;
}

export function vrrpPlan(pair: PairModel): VrrpPlan {
  const peerOf = (member: string) => pair.members.find((m) => m !== member) ?? member;
  const serving = servingMembers(pair);
  return {
    vrid: pair.vrid,
    priorities: pair.priorities,
    segment: pair.heartbeatSegment,
    unicastPeers: Object.fromEntries(serving.map((m) => [m, pair.dissolved ? [] : [pair.heartbeat[peerOf(m)]]])),
    advertIntervalSeconds: VRRP_ADVERT_INTERVAL_SECONDS,
    preemptDelaySeconds: VRRP_PREEMPT_DELAY_SECONDS,
  };
}

/** The members that serve: both, or only the active one of a dissolved pair. */
export function servingMembers(pair: PairModel): string[] {
  return pair.dissolved ? [pair.active] : [...pair.members];
}

/** What a takeover does, in order; `fencing` and `addresses` describe the provider's part. */
export function takeoverSteps(
  pair: PairModel,
  fencing: string,
  addresses: ReadonlyArray<{ purpose: string; how: string }>,
  vipTakeover: string,
): string[] {
  if (pair.dissolved) return [`${pair.name} is dissolved: ${pair.active} serves alone, ${pair.passive} is released; there is no takeover`];
  const deadAfter = 3 * VRRP_ADVERT_INTERVAL_SECONDS;
  return [
    `the surviving member misses VRRP advertisements on ${pair.heartbeatSegment} for ${deadAfter} s`,
    `fence the failed member: ${fencing}`,
    ...addresses.map((a) => `move failover address ${a.purpose}: ${a.how}`),
    `become master and take the pair's VIPs (${pair.vips.map((v) => v.address).join(", ") || "none"}): ${vipTakeover}`,
  ];
}
