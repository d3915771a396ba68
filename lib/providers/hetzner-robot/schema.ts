/**
 * The provider part of a Hetzner dedicated server site (`provider: { kind:
 * hetzner-robot, … }`) and the Robot facts the library encodes, each with its
 * source (collected in `../shared/PROVIDERS.md`).
 */
import { z } from "zod";
import { handedOverFields } from "../handed-over";

/**
 * VLAN ids a vSwitch can have (inclusive). Source: Hetzner Docs, vSwitch,
 * https://docs.hetzner.com/robot/dedicated-server/network/vswitch
 */
export const ROBOT_VLAN_RANGE: readonly [number, number] = [4000, 4091];

/** Dedicated servers one vSwitch joins at most (Hetzner Docs, vSwitch). */
export const ROBOT_SERVERS_PER_VSWITCH = 100;

/** vSwitches one dedicated server can be in at most (Hetzner Docs, vSwitch). */
export const ROBOT_VSWITCHES_PER_SERVER = 5;

/** MAC addresses one switch port admits at most (Hetzner Docs, vSwitch): every VLAN link here uses the NIC's own. */
export const ROBOT_MACS_PER_PORT = 32;

/** MTU of a vSwitch's VLAN interfaces (Hetzner Docs, vSwitch: 1400); the main NIC keeps its own. */
export const ROBOT_VSWITCH_MTU = 1400;

/** The Robot web service the failover scripts call (HTTP basic auth, the web service user). */
export const ROBOT_API = "https://robot-ws.your-server.de";

/**
 * Failover IP switches the Robot web service allows in an hour (reported:
 * about 50), so a switch is no health check: the pairs switch only on a
 * takeover, and space a refused switch's retries (`ROBOT_RETRY_SPACING_SECONDS`).
 */
export const ROBOT_SWITCHES_PER_HOUR = 50;

/** Seconds between two switch calls after one failed: 3600 / 50 = 72, so retries alone never exhaust the hour's switches. */
export const ROBOT_RETRY_SPACING_SECONDS = Math.ceil(3600 / ROBOT_SWITCHES_PER_HOUR);

/**
 * Seconds a failover switch call may take: the call returns once the IP is
 * routed, and switching takes 40–60 s (Hetzner Docs, Failover,
 * https://docs.hetzner.com/robot/dedicated-server/ip/failover/).
 */
export const ROBOT_SWITCH_TIMEOUT_SECONDS = 90;

/** Seconds a reset peer may still answer before the fence counts as failed (a long power press takes seconds). */
export const ROBOT_POWER_OFF_SECONDS = 30;

/** Seconds the reset call (fencing) may take: it only triggers the power button. */
export const ROBOT_RESET_TIMEOUT_SECONDS = 15;

export const robotProviderSchema = z.strictObject({
  kind: z.literal("hetzner-robot"),
  ...handedOverFields,
  /**
   * VLAN id of the first segment's vSwitch: segment i of the address plan
   * order (dmz, app, data, mgmt, the heartbeats, then the extra segments) rides
   * on the vSwitch with VLAN id base + i. Another Robot site of the same
   * account takes another base. The last id must stay within 4000–4091.
   * @default 4000
   */
  vswitchVlanBase: z
    .number()
    .int()
    .min(ROBOT_VLAN_RANGE[0])
    .max(ROBOT_VLAN_RANGE[1])
    .default(ROBOT_VLAN_RANGE[0])
    .describe(
      "VLAN id of the first segment's vSwitch (4000–4091): segment i of the address plan order (dmz, app, data, mgmt, the heartbeats, then the extra segments) gets base + i. Default: 4000",
    ),
});
