/**
 * The Pulumi half of the Robot adapter: nothing is created at Hetzner (the
 * servers, vSwitches and failover IPs are ordered in Robot); the hosts are
 * taken as handed over. Only the fencing differs from the common handed-over
 * behaviour: the second method is the Robot web service's reset.
 */
import * as pulumi from "@pulumi/pulumi";
import type { PairModel, SiteModel } from "../../model/model";
import { type FenceAction, type FencingPlan, mgmtFence, MGMT_FENCE } from "../fencing";
import { HandedOverProvisioning } from "../handed-over-provisioning";
import type { Provisioning } from "../provisioning";
import { ROBOT_API, ROBOT_POWER_OFF_SECONDS } from "./schema";
import { robotAdapter } from ".";

/** Fencing of a Robot pair: the mgmt fence sshd, then the web service's reset of the member's server (a long power press). */
export function robotFencing(model: SiteModel, pair: PairModel): FencingPlan {
  const fence: Record<string, FenceAction[]> = {};
  if (!pair.dissolved) {
    for (const member of pair.members) {
      const address = model.hosts.find((h) => h.name === member)?.publicAddress;
      fence[member] = [
        mgmtFence(pair, member),
        {
          run: `POST ${ROBOT_API}/reset/${address ?? "<main ip>"} type=power_long (Robot web service, the stack's providerApiToken as user:password)`,
          verify: `${member} answers on none of its addresses within ${ROBOT_POWER_OFF_SECONDS} s`,
        },
      ];
    }
  }
  return {
    description: `power off the failed member through ${MGMT_FENCE}, else through the Robot web service's reset (power_long: a long press of its power button)`,
    fence,
  };
}

class RobotProvisioning extends HandedOverProvisioning {
  override fencing(model: SiteModel, pair: PairModel): pulumi.Output<FencingPlan> {
    return pulumi.output(robotFencing(model, pair));
  }
}

/** The provisioning of a Robot site: handed-over hosts, fenced through the web service. */
export function robotProvisioning(): Provisioning {
  return new RobotProvisioning(robotAdapter, undefined);
}
