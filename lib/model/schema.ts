/**
 * The one schema of a site file (`sites/<location>.yaml`). Types come from
 * `z.infer`; defaults are the standard layout, so a site file only states what
 * is particular to the location. Rules that span fields or files live in
 * `validate.ts`; this file holds the per-field rules and their `.describe()`
 * texts, which the generated JSON Schema carries into editors.
 */
import { z } from "zod";
import { COUNTRY_CODES } from "./countries";
import { parseAddress, parseCidr } from "../net/ipv4";

/** Lower-case name used as a key in resource names: stable, DNS-safe. */
export const slug = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/, "must be lower-case letters, digits and dashes (2–32 characters, starting with a letter)");

export const ipv4 = z.string().refine((v) => parseAddress(v) !== undefined, {
  error: (issue) => `${String(issue.input)} is not an IPv4 address`,
});

/** An aligned IPv4 prefix in CIDR notation, optionally of a fixed length. */
export function prefix(length?: { min?: number; max?: number; exact?: number }) {
  return z.string().superRefine((value, ctx) => {
    const parsed = parseCidr(value);
    if (!parsed) {
      ctx.addIssue({ code: "custom", message: `${value} is not an IPv4 prefix in CIDR notation (a.b.c.d/len)` });
      return;
    }
    if (length?.exact !== undefined && parsed.length !== length.exact) {
      ctx.addIssue({ code: "custom", message: `${value} must be a /${length.exact}` });
      return;
    }
    if (length?.min !== undefined && parsed.length < length.min) {
      ctx.addIssue({ code: "custom", message: `${value} is larger than allowed: use a /${length.min} or smaller` });
      return;
    }
    if (length?.max !== undefined && parsed.length > length.max) {
      ctx.addIssue({ code: "custom", message: `${value} is smaller than allowed: use a /${length.max} or larger` });
      return;
    }
    if (!parsed.aligned) {
      ctx.addIssue({ code: "custom", message: `${value} has host bits set: the network address of a /${parsed.length} must be aligned` });
    }
  });
}

export const ROLES = ["firewall", "proxy", "virtualization", "storage"] as const;
export type Role = (typeof ROLES)[number];
/** Roles that always come as an active/passive pair. */
export const PAIRED_ROLES = ["firewall", "proxy", "storage"] as const;
export type PairedRole = (typeof PAIRED_ROLES)[number];

export const STANDARD_SEGMENTS = ["dmz", "app", "data", "mgmt"] as const;

const hostSchema = z
  .strictObject({
    /** Host name, unique across all sites (for example `vie-fw-1`). */
    name: slug.describe("Host name, unique across all sites (for example `vie-fw-1`)."),
    role: z.enum(ROLES),
    /** The physical machine (or hypervisor) the host runs on; members of a pair must differ. */
    physical: slug.describe("The physical machine (or hypervisor) the host runs on; members of a pair must differ."),
    /** The provider-assigned primary IPv4 address the library reaches the host on. */
    address: ipv4.describe("The provider-assigned primary IPv4 address the library reaches the host on."),
    /** Pinned internal addresses by segment name; unpinned ones are assigned by the address plan. */
    segments: z
      .record(z.string(), ipv4)
      .optional()
      .describe("Pinned internal addresses by segment name; unpinned ones are assigned by the address plan."),
  })
  .describe("A server the provider has handed over, configured from the operating system up.");

const hcloudProvider = z.strictObject({
  kind: z.literal("hcloud"),
  /** Hetzner Cloud location (network zone is derived from it). */
  location: z.enum(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]).describe("Hetzner Cloud location (network zone is derived from it)."),
  /**
   * Server types per role.
   * @default firewall cx32, proxy cx32, virtualization cx52, storage cx42
   */
  serverTypes: z
    .strictObject({
      firewall: z.string().default("cx32"),
      proxy: z.string().default("cx32"),
      virtualization: z.string().default("cx52"),
      storage: z.string().default("cx42"),
    })
    .prefault({}),
  /** Image for every server. @default debian-12 */
  image: z.string().default("debian-12").describe("Image for every server. Default: debian-12"),
});

const preprovisionedProvider = z.strictObject({
  kind: z.literal("preprovisioned"),
  /** Who hands the servers over (informational, and selects provider limits). */
  name: z.enum(["netcup", "ionos", "other"]).describe("Who hands the servers over (informational, and selects provider limits)."),
  /** Provider's own location label, for example `de/fra`. */
  region: z.string().optional().describe("Provider's own location label, for example `de/fra`."),
  /** Every server of the site, as handed over. */
  hosts: z.array(hostSchema).min(1).describe("Every server of the site, as handed over."),
  /**
   * A second fence method, run on the surviving member when the fence over mgmt
   * (the peer's fence sshd, always rendered) cannot reach the peer: for example
   * the provider's power-off call. `%h` is replaced by the failed host's name;
   * exit 0 means the peer is off.
   * @default none: a peer that the mgmt fence cannot reach and that answers on no address counts as down
   */
  fenceCommand: z.string().trim().min(1, "must not be empty: leave it out when there is no second fence method").optional(),
});

const bgpPeer = z.strictObject({
  name: slug,
  address: ipv4,
  asn: z.number().int().min(1).max(4294967295),
});

const ownPrefix = z.strictObject({
  mode: z.literal("own-prefix"),
  /** The operator's own public IPv4 /23, routed to this site. */
  prefix: prefix({ exact: 23 }).describe("The operator's own public IPv4 /23, routed to this site."),
  routing: z.discriminatedUnion("kind", [
    z.strictObject({
      kind: z.literal("static"),
      /** The provider routes the /23 to this address (the firewall pair's provider-side failover address). */
      nextHop: ipv4.describe("The provider routes the /23 to this address (the firewall pair's provider-side failover address)."),
    }),
    z.strictObject({
      kind: z.literal("bgp"),
      localAsn: z.number().int().min(1).max(4294967295),
      peers: z.array(bgpPeer).min(1),
    }),
  ]),
});

const providerFailoverIps = z.strictObject({
  mode: z.literal("provider-failover-ips"),
  /** Why the site cannot use an own prefix; printed in the plan. */
  reason: z
    .string()
    .default("the provider cannot route an own prefix to this site")
    .describe("Why the site cannot use an own prefix; printed in the plan."),
  /**
   * The failover IPs the provider handed over (pre-provisioned sites, where they
   * are ordered, not created). Hetzner Cloud sites leave this out: the API assigns them.
   */
  addresses: z.strictObject({ proxy: ipv4, nat: ipv4 }).optional(),
});

const extraSegment = z.strictObject({
  name: slug,
  prefixLength: z.number().int().min(16).max(29),
  /** Roles whose hosts join this segment (the firewall always does: it routes between segments). */
  members: z
    .array(z.enum(ROLES))
    .default([])
    .describe("Roles whose hosts join this segment (the firewall always does: it routes between segments)."),
});

const pairSetting = z
  .strictObject({
    /** Which member (1 or 2) is active; changing it is a reviewed takeover. @default 1 */
    active: z
      .union([z.literal(1), z.literal(2)])
      .default(1)
      .describe("Which member (1 or 2) is active; changing it is a reviewed takeover. Default: 1"),
    /** Dissolve the pair: the active member keeps serving alone, the other is released. @default false */
    dissolved: z
      .boolean()
      .default(false)
      .describe("Dissolve the pair: the active member keeps serving alone, the other is released. Default: false"),
  })
  .prefault({});

export const SiteFileSchema = z
  .strictObject({
    /** Where editors find this schema (ignored by the library). */
    $schema: z.string().optional().describe("Where editors find this schema (ignored by the library)."),
    /** Location name; must equal the file name (`sites/<name>.yaml`). */
    name: slug.describe("Location name; must equal the file name (`sites/<name>.yaml`)."),
    /** Three-letter code used in host names (for example `vie`). */
    code: z
      .string()
      .regex(/^[a-z]{3}$/, "must be three lower-case letters")
      .describe("Three-letter code used in host names (for example `vie`)."),
    /** ISO 3166-1 alpha-2 country code. */
    country: z
      .enum(COUNTRY_CODES, { error: (i) => `${String(i.input)} is not an ISO 3166-1 alpha-2 country code` })
      .describe("ISO 3166-1 alpha-2 country code."),
    description: z.string().optional(),
    provider: z.discriminatedUnion("kind", [hcloudProvider, preprovisionedProvider]),
    public: z.discriminatedUnion("mode", [ownPrefix, providerFailoverIps]),
    network: z.strictObject({
      /** Private supernet every segment of the site is carved from (RFC 1918, /16 to /20). */
      supernet: prefix({ min: 16, max: 20 }).describe("Private supernet every segment of the site is carved from (RFC 1918, /16 to /20)."),
      /**
       * Sizes of the standard segments and of each cluster's heartbeat subnet.
       * @default dmz /24, app /22, data /24, mgmt /24, heartbeat /29
       */
      sizes: z
        .strictObject({
          dmz: z.number().int().min(20).max(27).default(24),
          app: z.number().int().min(18).max(27).default(22),
          data: z.number().int().min(20).max(27).default(24),
          mgmt: z.number().int().min(20).max(27).default(24),
          heartbeat: z.number().int().min(28).max(30).default(29),
        })
        .prefault({}),
      /** Segments beyond the standard ones; append new ones at the end so existing ones keep their addresses. @default [] */
      extraSegments: z
        .array(extraSegment)
        .default([])
        .describe("Segments beyond the standard ones; append new ones at the end so existing ones keep their addresses. Default: []"),
    }),
    roles: z
      .strictObject({
        /** Virtualization hosts. @default 3 hosts running docker-compose */
        virtualization: z
          .strictObject({
            count: z.number().int().min(1).max(200).default(3),
            runtime: z.enum(["compose", "kubernetes"]).default("compose"),
          })
          .prefault({}),
        /** Storage capacity per store in GB. @default 2000 */
        storage: z
          .strictObject({ capacityGb: z.number().int().min(10).max(10240).default(2000) })
          .prefault({})
          .describe("Storage capacity per store in GB. Default: 2000"),
      })
      .prefault({}),
    /** Active member and dissolve setting of each pair. @default member 1 active, not dissolved */
    pairs: z
      .strictObject({ firewall: pairSetting, proxy: pairSetting, storage: pairSetting })
      .prefault({})
      .describe("Active member and dissolve setting of each pair. Default: member 1 active, not dissolved"),
    storage: z
      .strictObject({
        snapshots: z
          .strictObject({
            /** Minutes between snapshots. @default 60 */
            intervalMinutes: z.number().int().min(5).max(1440).default(60).describe("Minutes between snapshots. Default: 60"),
            /** Snapshots kept. @default 48 */
            keep: z.number().int().min(1).max(1000).default(48).describe("Snapshots kept. Default: 48"),
          })
          .prefault({}),
        backups: z
          .strictObject({
            /** Daily backups kept; at least 30. @default 30 */
            daily: z
              .number()
              .int()
              .min(30, "backups must be kept at least 30 days: set 30 or more")
              .default(30)
              .describe("Daily backups kept; at least 30. Default: 30"),
            /** Weekly backups kept. @default 8 */
            weekly: z.number().int().min(0).default(8).describe("Weekly backups kept. Default: 8"),
            /** Monthly backups kept. @default 12 */
            monthly: z.number().int().min(0).default(12).describe("Monthly backups kept. Default: 12"),
          })
          .prefault({}),
        /** File replication interval to the partner site, in minutes; at most 15. @default 15 */
        replicationIntervalMinutes: z
          .number()
          .int()
          .min(1)
          .max(15, "files must be replicated at least every 15 minutes: set 15 or less")
          .default(15),
      })
      .prefault({}),
    management: z.strictObject({
      /** Prefixes allowed to reach management (SSH, stats, APIs). */
      allowlist: z.array(prefix()).min(1).describe("Prefixes allowed to reach management (SSH, stats, APIs)."),
    }),
    /** NTP sources shared by every host of the site, so pair members keep identical time. */
    time: z
      .strictObject({ servers: z.array(z.string().min(1)).min(2).default(["ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de"]) })
      .prefault({}),
    /** The site that replicates with this one and stands by for it. */
    partner: slug.describe("The site that replicates with this one and stands by for it."),
    /**
     * A pinned VRRP router id base for the site's pairs (firewall +0, proxy +1,
     * storage +2, one per segment of the firewall after that).
     * @default 10
     */
    vrrpIdBase: z.number().int().min(1).max(200).default(10),
  })
  .describe("One standort location: provider, addressing, roles and pairs.");

export type SiteFileInput = z.input<typeof SiteFileSchema>;
export type SiteFile = z.infer<typeof SiteFileSchema>;
export type PreprovisionedHost = z.infer<typeof hostSchema>;

/**
 * Stack configuration (`stacks/Pulumi.<stack>.yaml`, namespace `standort`).
 * Secrets arrive through `pulumi config set --secret` and stay Pulumi secrets.
 */
export const StackConfigSchema = z.strictObject({
  /** Which site file this stack deploys (`sites/<site>.yaml`). */
  site: slug.describe("Which site file this stack deploys (`sites/<site>.yaml`)."),
  /** Hetzner Cloud API token; required by Hetzner Cloud sites. Secret. */
  hcloudToken: z.string().min(1).optional().describe("Hetzner Cloud API token; required by Hetzner Cloud sites. Secret."),
  /** Private SSH key the delivery uses to reach the hosts. Secret. */
  sshPrivateKey: z.string().min(1).optional().describe("Private SSH key the delivery uses to reach the hosts. Secret."),
  /** Public SSH key installed for the operator on API-provisioned hosts. */
  sshPublicKey: z.string().min(1).optional().describe("Public SSH key installed for the operator on API-provisioned hosts."),
  /** Kubeconfig of the site's Kubernetes cluster, where services run on Kubernetes. Secret. */
  kubeconfig: z
    .string()
    .min(1)
    .optional()
    .describe("Kubeconfig of the site's Kubernetes cluster, where services run on Kubernetes. Secret."),
  /** Provider API token the failover scripts use; on Hetzner Cloud the hcloud token serves. Secret. */
  providerApiToken: z
    .string()
    .min(1)
    .optional()
    .describe("Provider API token the failover scripts use; on Hetzner Cloud the hcloud token serves. Secret."),
  /**
   * Extra environment of the failover scripts, as a YAML mapping (IONOS ids, the
   * move command of a provider without an API).
   * @default {}
   */
  providerEnv: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a mapping of variable names to strings" });
        return z.NEVER;
      }
    })
    .pipe(
      z.record(
        z.string().regex(/^[A-Z][A-Z0-9_]*$/, "variable names are upper-case letters, digits and _"),
        // The values land single-quoted in a shell file on the hosts.
        z.string().regex(/^[^'\n\r]*$/, "values may not hold a single quote or a line break"),
      ),
    )
    .optional(),
  /**
   * Where the other sites' stacks are, for StackReference: `<organization>/<project>`.
   * A stack of site X is read as `<stackPrefix>/X`.
   * @default "organization/standort" (the self-managed backends' organization)
   */
  stackPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "must be <organization>/<project>")
    .default("organization/standort"),
});
export type StackConfig = z.infer<typeof StackConfigSchema>;
