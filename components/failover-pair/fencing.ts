/**
 * Fencing: before a member takes the public address over, the failed member
 * is switched off, so that two members never serve the same addresses or
 * write the same store. Pure descriptions for the plan; the failover script
 * (`lib/render/keepalived.ts`) runs them.
 *
 * First method everywhere: the peer's fence sshd over mgmt
 * (`lib/render/fence.ts`), with a key that may only power the peer off.
 * Second method, when the first cannot reach the peer: the provider's
 * power-off (Hetzner Cloud's API) or the site's `provider.fenceCommand`.
 */
import { PairModel } from "../../lib/model/model";
import { FENCE_SSH_PORT } from "../../lib/render/policy";

/** How one member is fenced by the other. */
export interface FenceAction {
  /** What the surviving member runs to switch this member off. */
  readonly run: string;
  /** A command that exits 0 only once this member is off; absent where none exists. */
  readonly verify?: string;
}

export interface FencingPlan {
  readonly description: string;
  /** Fence actions keyed by the member that would be fenced, in the order they are tried. Empty for a dissolved pair. */
  readonly fence: Readonly<Record<string, ReadonlyArray<FenceAction>>>;
}

/** The Hetzner Cloud API base the takeover script calls. */
export const HCLOUD_API = "https://api.hetzner.cloud/v1";

const MGMT_FENCE = `the peer's fence sshd over mgmt (port ${FENCE_SSH_PORT}, a key generated for the pair that may only power the peer off)`;

/** The first method: the fence sshd on the member's mgmt address. */
function mgmtFence(pair: PairModel, member: string): FenceAction {
  return { run: `ssh -p ${FENCE_SSH_PORT} -i /etc/standort/fence/id_ed25519 root@${pair.mgmt[member]} (forced command: power off)` };
}

/**
 * Fencing through the mgmt sshd first, Hetzner Cloud's power-off action
 * second: a hard power-off of the failed member's server, confirmed by its
 * status. The API token comes from the provider environment file on the
 * hosts (`HCLOUD_TOKEN`), never from here.
 */
export function hcloudFencing(pair: PairModel, serverIds: Readonly<Record<string, string>>): FencingPlan {
  const fence: Record<string, FenceAction[]> = {};
  if (!pair.dissolved) {
    for (const member of pair.members) {
      const id = serverIds[member];
      if (id === undefined) throw new Error(`${pair.name}: no server id for ${member}`);
      fence[member] = [
        mgmtFence(pair, member),
        {
          run: `POST ${HCLOUD_API}/servers/${id}/actions/poweroff (token from /etc/standort/provider.env)`,
          verify: `GET ${HCLOUD_API}/servers/${id}: status "off"`,
        },
      ];
    }
  }
  return {
    description: `power off the failed member through ${MGMT_FENCE}, else through the Hetzner Cloud API (POST /servers/{id}/actions/poweroff)`,
    fence,
  };
}

/**
 * Fencing of pre-provisioned hosts: the mgmt sshd, then the site's
 * `provider.fenceCommand` where it names one (`%h` is the failed member).
 */
export function commandFencing(pair: PairModel, fenceCommand: string | undefined): FencingPlan {
  const fence: Record<string, FenceAction[]> = {};
  if (!pair.dissolved) {
    for (const member of pair.members)
      fence[member] = [mgmtFence(pair, member), ...(fenceCommand ? [{ run: fenceCommand.split("%h").join(member) }] : [])];
  }
  return {
    description: fenceCommand
      ? `power off the failed member through ${MGMT_FENCE}, else by the site's fence command`
      : `power off the failed member through ${MGMT_FENCE}; a member that cannot be reached on any address counts as down`,
    fence,
  };
}
