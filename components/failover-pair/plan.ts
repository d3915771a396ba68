/**
 * The active/passive settings of a pair as data, for the plan: VRRP over the
 * heartbeat segment and mgmt, who serves, and the takeover steps. Pure; the
 * timers are the keepalived renderer's (`lib/render/keepalived.ts`), read
 * here so that the plan shows what the hosts run.
 */
import { PairModel, SiteModel } from "../../lib/model/model";
import { VRRP_ADVERT_SECONDS, failbackDelaySeconds, masterDownSeconds } from "../../lib/render/keepalived";

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
  /** The second path: the same VRRP router over mgmt, to the peer's mgmt address. Empty for a dissolved pair. */
  readonly mgmtUnicastPeers: Readonly<Record<string, ReadonlyArray<string>>>;
  readonly advertIntervalSeconds: number;
  /** 0: the named active member takes the addresses back at once when it returns. */
  readonly preemptDelaySeconds: number;
}

export function vrrpPlan(pair: PairModel, model: SiteModel): VrrpPlan {
  const peerOf = (member: string) => pair.members.find((m) => m !== member) ?? member;
  const serving = servingMembers(pair);
  return {
    vrid: pair.vrid,
    priorities: pair.priorities,
    segment: pair.heartbeatSegment,
    unicastPeers: Object.fromEntries(serving.map((m) => [m, pair.dissolved ? [] : [pair.heartbeat[peerOf(m)]]])),
    mgmtUnicastPeers: Object.fromEntries(serving.map((m) => [m, pair.dissolved ? [] : [pair.mgmt[peerOf(m)]]])),
    advertIntervalSeconds: VRRP_ADVERT_SECONDS,
    preemptDelaySeconds: pair.dissolved ? 0 : failbackDelaySeconds(model, pair.role),
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
  const deadAfter = masterDownSeconds(pair.priorities[pair.passive]);
  return [
    `the surviving member misses VRRP advertisements on ${pair.heartbeatSegment} and mgmt for ${deadAfter} s`,
    `fence the failed member: ${fencing}`,
    ...addresses.map((a) => `move failover address ${a.purpose}: ${a.how}`),
    `become master and take the pair's VIPs (${pair.vips.map((v) => v.address).join(", ") || "none"}): ${vipTakeover}`,
  ];
}
