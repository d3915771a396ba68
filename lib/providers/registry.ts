/**
 * The registry of provider adapters: the provider part of the site file's
 * schema (one member per `kind`) and the lookup from a site's provider to its
 * adapter. Adding a provider adds its adapter folder and one entry here.
 */
import { z } from "zod";
import type { ProviderAdapter } from "./adapter";
import type { SiteModel } from "../model/model";
import type { SiteFile } from "../model/schema";
import { preprovisionedProviderSchema } from "./handed-over";
import { hcloudAdapter, hcloudProviderSchema } from "./hcloud";
import { robotAdapter, robotProviderSchema } from "./hetzner-robot";
import { ionosAdapter } from "./ionos";
import { netcupAdapter } from "./netcup";
import { otherAdapter } from "./other";

export type { ProviderAdapter } from "./adapter";

/** The `provider` field of a site file: one schema per kind. */
export const providerSchema = z.discriminatedUnion("kind", [hcloudProviderSchema, robotProviderSchema, preprovisionedProviderSchema]);
export type ProviderFile = z.infer<typeof providerSchema>;

/** Every adapter, by the key a site file selects it with (`kind`, or `name` under `kind: preprovisioned`). */
export const ADAPTERS: Readonly<Record<string, ProviderAdapter>> = {
  hcloud: hcloudAdapter,
  "hetzner-robot": robotAdapter,
  netcup: netcupAdapter,
  ionos: ionosAdapter,
  other: otherAdapter,
};

/** The provider kinds `npm run new-site -- --provider` accepts: every adapter's key. */
export const PROVIDER_KINDS = Object.keys(ADAPTERS);

/** The key of a site's provider: its `kind`, or under `kind: preprovisioned` the provider's `name`. */
export function providerKey(provider: ProviderFile): string {
  return provider.kind === "preprovisioned" ? provider.name : provider.kind;
}

/** The adapter of a site file's or a model's provider. */
export function adapterOf(site: { readonly provider: ProviderFile } | SiteFile | SiteModel): ProviderAdapter {
  const key = providerKey(site.provider);
  const adapter = ADAPTERS[key];
  if (!adapter) throw new Error(`no provider adapter for ${key}`);
  return adapter;
}
