/**
 * What every provider that hands servers over running has in common (Netcup,
 * IONOS, any other): the site file lists the hosts; the segments are VLANs on
 * the hosts' internal NIC and VIPs move by VRRP; failover IPs are ordered, not
 * created, and the failover script moves them with the operator's command
 * (`FAILOVER_MOVE_COMMAND`) unless the adapter drives the provider's API.
 * An adapter starts from `handedOverAdapter` and replaces what differs.
 */
import { z } from "zod";
import type { ProviderAdapter, ProviderScaffold } from "./adapter";
import { handedOverHostSchema, text } from "../model/primitives";
import { standardVlanId } from "./vlans";
import { shQuote } from "./sh";
import type { SiteFile } from "../model/schema";

/**
 * The data disk of a pre-provisioned store: the second virtio disk, as
 * Netcup's and IONOS's KVM servers present an extra disk, unless the site file
 * names another (`roles.storage.dataDisk`). The first-boot script refuses a
 * disk that is missing or holds a filesystem, so a wrong one stops there and
 * never formats anything.
 */
export const PREPROVISIONED_DATA_DISK = "/dev/vdb";

/** Who hands the servers over under `kind: preprovisioned` (each name is an adapter). */
export const PREPROVISIONED_NAMES = ["netcup", "ionos", "other"] as const;

/** The hosts as handed over, and the optional second fence method: fields every handed-over provider schema has. */
export const handedOverFields = {
  /** Provider's own location label, for example `de/fra`. */
  region: text.optional().describe("Provider's own location label, for example `de/fra`."),
  /** Every server of the site, as handed over. */
  hosts: z.array(handedOverHostSchema).min(1).describe("Every server of the site, as handed over."),
  /**
   * A second fence method, run on the surviving member when the fence over mgmt
   * (the peer's fence sshd, always rendered) cannot reach the peer: for example
   * the provider's power-off call. `%h` is replaced by the failed host's name;
   * exit 0 means the peer is off.
   * @default none: a peer that the mgmt fence cannot reach and that answers on no address counts as down
   */
  fenceCommand: z.string().trim().min(1, "must not be empty: leave it out when there is no second fence method").optional(),
};

export const preprovisionedProviderSchema = z.strictObject({
  kind: z.literal("preprovisioned"),
  /** Who hands the servers over (informational, and selects provider limits). */
  name: z.enum(PREPROVISIONED_NAMES).describe("Who hands the servers over (informational, and selects provider limits)."),
  ...handedOverFields,
});

/** The site file's second fence method (`provider.fenceCommand`), where its provider's schema has one. */
export function fenceCommandOf(provider: SiteFile["provider"]): string | undefined {
  return "fenceCommand" in provider ? provider.fenceCommand : undefined;
}

/** The site's own fence command as the second fence method, or none. */
export function fenceCommandLines(fenceCommand: string | undefined, peer: string): string[] {
  return fenceCommand
    ? [
        "# Second: the site's fence command (provider.fenceCommand, %h = the peer).",
        `FENCE_COMMAND=${shQuote(fenceCommand.replace(/%h/g, peer))}`,
        "fence_second() {",
        '\tsh -c "$FENCE_COMMAND"',
        "}",
      ]
    : ["# No second method: the site names no fence command.", "fence_second() {", "\treturn 1", "}"];
}

/**
 * The `kind` (and `name`) lines of a handed-over provider's site file block:
 * the `kind` of the adapter's own schema, or `kind: preprovisioned` with the
 * adapter's key as `name`.
 */
function kindLines(id: string, schema: z.ZodType | undefined): string[] {
  const kind = schema instanceof z.ZodObject ? (schema.shape as Record<string, unknown>).kind : undefined;
  return kind instanceof z.ZodLiteral && typeof kind.value === "string" ? [`kind: ${kind.value}`] : ["kind: preprovisioned", `name: ${id}`];
}

/**
 * What `npm run new-site` writes for a provider that hands servers over: the
 * standard hosts at their placeholder addresses, each marked for replacement;
 * the placeholder of `FAILOVER_MOVE_COMMAND`, the operator's command that
 * moves an address; the API token where the pairs move failover IPs.
 */
function handedOverScaffold(id: string, displayName: string, schema: z.ZodType | undefined): ProviderScaffold {
  return {
    label: displayName,
    region: { field: "region", required: false, values: [] },
    describeSite: (title) => `${displayName}, ${title}`,
    failoverIpsName: "provider-assigned failover IPs",
    header: (site) => [
      `${site.title}: servers handed over by ${displayName}. Written by npm run new-site: every`,
      `address marked "replace" is a placeholder (sites/pools.yaml, placeholders)`,
      "until the address the provider handed over replaces it.",
    ],
    provider: (site) => [
      ...kindLines(id, schema),
      ...(site.region !== undefined ? [`region: ${site.region}`] : []),
      "# Placeholders: the standard set of hosts; put each on the machine it runs on (pair members on",
      "# different machines) and give it the address the provider handed over.",
      "hosts:",
      ...site.hosts.map(
        (h) => `  - { name: ${h.name}, role: ${h.role}, physical: ${h.physical}, address: ${h.address} } # ${site.replace}`,
      ),
    ],
    stackComment: (requiredEnv) =>
      requiredEnv.includes("FAILOVER_MOVE_COMMAND")
        ? [
            `${displayName} moves addresses through no API the library drives: the pairs move theirs with this`,
            "operator-provided command (FAILOVER_ADDRESS and SELF are exported to it). Placeholder: replace it",
            "with the command that moves the address at the provider (see stacks/Pulumi.vienna.yaml).",
          ]
        : [],
    envPlaceholder: (key) => (key === "FAILOVER_MOVE_COMMAND" ? `/usr/local/sbin/standort-${id}-route-failover` : undefined),
    secrets: ({ movesFailoverIps }) =>
      movesFailoverIps ? [`pulumi config set --secret standort:providerApiToken <${displayName} token>`] : [],
  };
}

/**
 * A handed-over provider's adapter: the common behaviour, with `overrides` for
 * what differs. `base.label` names it in the plan, `base.displayName` in the
 * files `npm run new-site` writes.
 */
export function handedOverAdapter(
  base: Pick<ProviderAdapter, "id" | "operator"> & { readonly label: string; readonly displayName: string },
  overrides: Partial<Omit<ProviderAdapter, "failover" | "scaffold">> & {
    readonly failover?: Partial<ProviderAdapter["failover"]>;
    readonly scaffold?: Partial<ProviderScaffold>;
  } = {},
): ProviderAdapter {
  const adapter: ProviderAdapter = {
    id: base.id,
    operator: base.operator,
    describe: () => `${base.label} (pre-provisioned)`,
    hosts: { kind: "handed-over", hosts: (provider) => ("hosts" in provider ? provider.hosts : []) },
    userData: false,
    ownPrefix: {
      routable: true,
      how: `${base.label} routes the prefix to the site by arrangement (static next hop or BGP session), not through an API`,
    },
    failoverIps: "declared",
    reservedAddresses: () => [],
    siteProblems: () => [],
    segments: {
      kind: "vlans",
      vlanId: standardVlanId,
      vlanRange: [1, 4094],
      note: "segments are VLANs on the hosts' internal links",
    },
    failover: {
      tokenVariable: "PROVIDER_API_TOKEN",
      apiFence: false,
      movesNeedToken: () => false,
      preamble: () => [],
      fenceSecond: (model, peer) => fenceCommandLines(fenceCommandOf(model.provider), peer),
      moveAddress: (_model, _move, common) => [
        ...common.uplink,
        ...common.addressLine,
        "# This provider's move is a command from provider.env (FAILOVER_MOVE_COMMAND; FAILOVER_ADDRESS and SELF are exported).",
        "move_failover_address() {",
        '\t[ -n "$FAILOVER_ADDRESS" ] || { log "no failover address known: cannot move it"; return 1; }',
        '\t[ -n "${FAILOVER_MOVE_COMMAND:-}" ] || { log "$PROVIDER_ENV_FILE lacks FAILOVER_MOVE_COMMAND: cannot move $FAILOVER_ADDRESS"; return 1; }',
        "\texport FAILOVER_ADDRESS SELF",
        '\tsh -c "$FAILOVER_MOVE_COMMAND" || return 1',
        '\thold_address "$FAILOVER_ADDRESS"',
        "}",
      ],
      requiredEnv: (_model, moving) => (moving.length > 0 ? ["FAILOVER_MOVE_COMMAND"] : []),
    },
    dataDisk: { device: (model) => model.storage.dataDisk ?? PREPROVISIONED_DATA_DISK, guard: [] },
    internalAddress: "kube-vip-arp",
    notes: () => [],
    scaffold: handedOverScaffold(base.id, base.displayName, overrides.schema),
  };
  return {
    ...adapter,
    ...overrides,
    failover: { ...adapter.failover, ...overrides.failover },
    scaffold: { ...adapter.scaffold, ...overrides.scaffold },
  };
}
