/**
 * Fencing: before a member takes the public address over, the failed member
 * is switched off, so that two members never serve the same addresses or
 * write the same store. Pure descriptions for the plan; the failover script
 * (`lib/render/keepalived.ts`) runs them.
 *
 * First method everywhere: the peer's fence sshd over mgmt
 * (`lib/render/fence.ts`), with a key that may only power the peer off.
 * Second method, when the first cannot reach the peer: the provider's
 * power-off through its API (the adapter's) or the site's `provider.fenceCommand`.
 */
import type { PairModel } from "../model/model";
import { FENCE_SSH_PORT } from "../render/policy";

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

export const MGMT_FENCE = `the peer's fence sshd over mgmt (port ${FENCE_SSH_PORT}, a key generated for the pair that may only power the peer off)`;

/** The first method: the fence sshd on the member's mgmt address. */
export function mgmtFence(pair: PairModel, member: string): FenceAction {
  return { run: `ssh -p ${FENCE_SSH_PORT} -i /etc/standort/fence/id_ed25519 root@${pair.mgmt[member]} (forced command: power off)` };
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
