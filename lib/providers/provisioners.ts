/**
 * The registry of the adapters' Pulumi halves (`Provisioning`): an adapter
 * whose hosts are handed over needs no entry (nothing is created at its
 * provider); one that creates resources names its implementation here.
 */
import type { SiteModel } from "../model/model";
import { HandedOverProvisioning } from "./handed-over-provisioning";
import { fenceCommandOf } from "./handed-over";
import { hcloudProvisioning } from "./hcloud/provisioning";
import { robotProvisioning } from "./hetzner-robot/provisioning";
import type { MissingConfig, Provisioning, StackSetup } from "./provisioning";
import type { StackConfig } from "../model/schema";
import type * as pulumi from "@pulumi/pulumi";
import { hcloudStackSetup } from "./hcloud/provisioning";
import { adapterOf } from "./registry";

const PROVISIONERS: Readonly<Record<string, (model: SiteModel) => Provisioning>> = {
  hcloud: hcloudProvisioning,
  "hetzner-robot": robotProvisioning,
};

/** The provisioning of a site: its adapter's, or the handed-over one. */
export function provisioningFor(model: SiteModel): Provisioning {
  const adapter = adapterOf(model);
  const own = PROVISIONERS[adapter.id];
  if (own) return own(model);
  return new HandedOverProvisioning(adapter, fenceCommandOf(model.provider));
}

const STACK_SETUPS: Readonly<Record<string, (config: StackConfig, secrets: pulumi.Config, missing: MissingConfig) => StackSetup>> = {
  hcloud: hcloudStackSetup,
};

/** The Pulumi providers and API secret a site's stack needs (none for handed-over hosts); refuses missing keys. */
export function stackSetupFor(model: SiteModel, config: StackConfig, secrets: pulumi.Config, missing: MissingConfig): StackSetup {
  return STACK_SETUPS[adapterOf(model).id]?.(config, secrets, missing) ?? { providers: {} };
}
