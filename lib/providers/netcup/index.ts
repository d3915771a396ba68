/**
 * Netcup: servers, failover IPs and VLANs are ordered, not created through an
 * API. Its SCP API re-routes a failover IP (`ChangeIPRouting`, reported: at
 * most once every 5 minutes), which the library does not drive: the pairs move
 * addresses with the operator's `FAILOVER_MOVE_COMMAND` (`../handed-over.ts`).
 */
import { handedOverAdapter } from "../handed-over";

/** Netcup re-routes a failover IP at most once every 5 minutes (reported; `../shared/PROVIDERS.md`, SCP `changeIPRouting`). */
export const NETCUP_MOVE_INTERVAL_SECONDS = 300;

export const netcupAdapter = handedOverAdapter(
  { id: "netcup", operator: "netcup", label: "netcup", displayName: "Netcup" },
  { failover: { moveIntervalSeconds: NETCUP_MOVE_INTERVAL_SECONDS } },
);
