/**
 * Fencing plans (what the failover script runs before a takeover), owned by
 * the provider seam: the generic parts in `lib/providers/fencing.ts`, each
 * provider's API power-off in its adapter.
 */
export { type FenceAction, type FencingPlan, commandFencing } from "../../lib/providers/fencing";
export { hcloudFencing } from "../../lib/providers/hcloud/provisioning";
