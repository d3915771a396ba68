/**
 * Fencing: before a member takes over, the failed member is switched off, so
 * that two members never serve the same addresses or write the same store.
 * Pure descriptions; the takeover script (rendered elsewhere) runs them.
 */
import { PairModel } from "../../lib/model/model";

/** How one member is fenced by the other. */
export interface FenceAction {
  /** The command the surviving member runs to switch this member off. */
  readonly run: string;
  /** A command that exits 0 only once this member is off; absent where none exists. */
  readonly verify?: string;
}

export interface FencingPlan {
  readonly method: "provider-api" | "command";
  readonly description: string;
  /** Fence actions keyed by the member that would be fenced. Empty for a dissolved pair. */
  readonly fence: Readonly<Record<string, FenceAction>>;
}

/** The Hetzner Cloud API base the takeover script calls. */
export const HCLOUD_API = "https://api.hetzner.cloud/v1";

/**
 * Fencing through Hetzner Cloud's power-off action: a hard power-off of the
 * failed member's server, confirmed by its status. The API token comes from
 * the provider environment file on the hosts (`HCLOUD_TOKEN`), never from here.
 */
export function hcloudFencing(pair: PairModel, serverIds: Readonly<Record<string, string>>): FencingPlan {
  const auth = `-H "Authorization: Bearer $HCLOUD_TOKEN"`;
  const fence: Record<string, FenceAction> = {};
  if (!pair.dissolved) {
    for (const member of pair.members) {
      const id = serverIds[member];
      if (id === undefined) throw new Error(`${pair.name}: no server id for ${member}`);
      fence[member] = {
        run: `curl -fsS -X POST ${auth} ${HCLOUD_API}/servers/${id}/actions/poweroff`,
        verify: `curl -fsS ${auth} ${HCLOUD_API}/servers/${id} | jq -e '.server.status == "off"'`,
      };
    }
  }
  return {
    method: "provider-api",
    description: `power off the failed member through the Hetzner Cloud API (POST /servers/{id}/actions/poweroff) and wait for status "off" before taking over`,
    fence,
  };
}

/**
 * Fencing by the site's declared command (pre-provisioned hosts, where the
 * library drives no power-off API): `%h` is replaced by the failed member's name.
 */
export function commandFencing(pair: PairModel, fenceCommand: string): FencingPlan {
  const fence: Record<string, FenceAction> = {};
  if (!pair.dissolved) {
    for (const member of pair.members) fence[member] = { run: fenceCommand.split("%h").join(member) };
  }
  return {
    method: "command",
    description: `run the site's fence command against the failed member; its exit status is the proof it is off`,
    fence,
  };
}
