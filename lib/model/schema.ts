/**
 * The one schema of a site file (`sites/<location>.yaml`). Types come from
 * `z.infer`; defaults are the standard layout, so a site file only states what
 * is particular to the location. Rules that span fields or files live in
 * `validate.ts`; this file holds the per-field rules and their `.describe()`
 * texts, which the generated JSON Schema carries into editors.
 */
import { z } from "zod";
import { COUNTRY_CODES } from "./countries";
import { nonUnicastRangeOf, formatCidr, parseCidr } from "../net/ipv4";

export * from "./primitives";
import { providerSchema } from "../providers/registry";
import {
  handedOverHostSchema,
  prefix,
  shown,
  slug,
  text,
  unicastAddress,
  ROLES,
  STANDARD_SEGMENTS,
  HEARTBEAT_SEGMENTS,
  RESERVED_LINK_NAME,
  timeSource,
  listedOnce,
} from "./primitives";

const bgpPeer = z.strictObject({
  name: slug,
  address: unicastAddress("give the provider router's address"),
  asn: z.number().int().min(1).max(4294967295),
});

/** BGP peers: each name and address once (BIRD names a session by the peer's name). */
const bgpPeers = z
  .array(bgpPeer)
  .min(1)
  .superRefine((peers, ctx) => {
    for (const key of ["name", "address"] as const) {
      peers.forEach((peer, i) => {
        const first = peers.findIndex((p) => p[key] === peer[key]);
        if (first !== i)
          ctx.addIssue({
            code: "custom",
            path: [i, key],
            message: `${peer[key]} is already the ${key} of public.routing.peers[${first}]: list each BGP peer once, under its own name`,
          });
      });
    }
  });

const ownPrefix = z.strictObject({
  mode: z.literal("own-prefix"),
  /** The operator's own public IPv4 /23, routed to this site. */
  prefix: prefix({ exact: 23 }).describe("The operator's own public IPv4 /23, routed to this site."),
  routing: z.discriminatedUnion("kind", [
    z.strictObject({
      kind: z.literal("static"),
      /** The provider routes the /23 to this address (the firewall pair's provider-side failover address). */
      nextHop: unicastAddress("give the provider-side failover address the provider routes the prefix to").describe(
        "The provider routes the /23 to this address (the firewall pair's provider-side failover address).",
      ),
    }),
    z
      .strictObject({
        kind: z.literal("bgp"),
        localAsn: z.number().int().min(1).max(4294967295),
        peers: bgpPeers,
      })
      .superRefine((bgp, ctx) => {
        bgp.peers.forEach((peer, i) => {
          if (peer.asn === bgp.localAsn)
            ctx.addIssue({
              code: "custom",
              path: ["peers", i, "asn"],
              message: `${peer.asn} is the site's own AS (localAsn): give the provider's AS, the prefix is announced to it by eBGP`,
            });
        });
      }),
  ]),
});

const providerFailoverIps = z.strictObject({
  mode: z.literal("provider-failover-ips"),
  /** Why the site cannot use an own prefix; printed in the plan. */
  reason: text
    .default("the provider cannot route an own prefix to this site")
    .describe("Why the site cannot use an own prefix; printed in the plan."),
  /**
   * The failover IPs the provider handed over (pre-provisioned sites, where they
   * are ordered, not created). Hetzner Cloud sites leave this out: the API assigns them.
   */
  addresses: z
    .strictObject({
      proxy: unicastAddress("list the failover IP the provider handed over for the proxy pair"),
      nat: unicastAddress("list the failover IP the provider handed over for outbound NAT"),
    })
    .optional(),
});

const extraSegment = z.strictObject({
  name: slug.refine((name) => !RESERVED_LINK_NAME.test(name), {
    error: (issue) =>
      `${shown(issue.input)} is the name of a link the hosts already have (loopback, a NIC or a site tunnel): name the segment after its purpose`,
  }),
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
      .enum(COUNTRY_CODES, { error: (i) => `${shown(i.input)} is not an ISO 3166-1 alpha-2 country code` })
      .describe("ISO 3166-1 alpha-2 country code."),
    description: text.optional(),
    provider: providerSchema,
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
        .superRefine((extras, ctx) => {
          const taken = new Set<string>([...STANDARD_SEGMENTS, ...Object.values(HEARTBEAT_SEGMENTS)]);
          extras.forEach((extra, i) => {
            const first = extras.findIndex((e) => e.name === extra.name);
            if (taken.has(extra.name))
              ctx.addIssue({
                code: "custom",
                path: [i, "name"],
                message: `${extra.name} is a segment every site has: give the extra segment another name`,
              });
            else if (first !== i)
              ctx.addIssue({
                code: "custom",
                path: [i, "name"],
                message: `${extra.name} is already the name of network.extraSegments[${first}]: give each segment its own name`,
              });
          });
        })
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
          .strictObject({
            capacityGb: z.number().int().min(10).max(10240).default(2000),
            /**
             * The block device DRBD replicates on each store of a pre-provisioned site (the provider's extra
             * disk). Hetzner Cloud sites name their volume themselves and refuse it.
             * @default /dev/vdb (the second virtio disk of Netcup's and IONOS's KVM servers)
             */
            dataDisk: z
              .string()
              .regex(
                /^\/dev\/(?:[a-z]+[0-9]*(?:n[0-9]+)?|disk\/by-(?:id|path|uuid|label)\/[A-Za-z0-9:._-]+)$/,
                "must be a whole disk (/dev/vdb, /dev/sdb, /dev/nvme1n1) or a stable link under /dev/disk/by-id, by-path, by-uuid or by-label",
              )
              .optional(),
          })
          .prefault({})
          .describe("Storage capacity per store in GB (default 2000), and the data disk of pre-provisioned stores."),
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
      allowlist: z
        .array(
          prefix().superRefine((value, ctx) => {
            const parsed = parseCidr(value);
            // 0.0.0.0/0 has its own rule (the whole internet), in validate.ts.
            const range = parsed && parsed.aligned && parsed.length > 0 ? nonUnicastRangeOf(parsed) : undefined;
            if (range)
              ctx.addIssue({
                code: "custom",
                message: `${value} overlaps ${formatCidr(range.cidr)} (${range.name}), where no operator's address can be: list the operator's own prefixes`,
              });
          }),
        )
        .min(1)
        .superRefine(listedOnce("management.allowlist", "list each prefix once"))
        .describe("Prefixes allowed to reach management (SSH, stats, APIs)."),
    }),
    /** NTP sources shared by every host of the site, so pair members keep identical time. */
    time: z
      .strictObject({
        servers: z
          .array(timeSource)
          .min(2)
          .superRefine(listedOnce("time.servers", "list each time source once"))
          .default(["ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de"]),
      })
      .prefault({}),
    /** The site that replicates with this one and stands by for it. */
    partner: slug.describe("The site that replicates with this one and stands by for it."),
    /**
     * The other sites this site stands by for, besides its own partner (which stands by for it): each names this site
     * as its partner, replicates to it and reaches it through its own tunnel. Lets one site stand by for several.
     * @default []
     */
    standbyFor: z
      .array(slug)
      .default([])
      .describe(
        "The other sites this site stands by for, besides its own partner (which stands by for it): each must name this site as its partner. This site then receives their replication and off-site backups, each through its own tunnel. Default: []",
      ),
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
export type PreprovisionedHost = z.infer<typeof handedOverHostSchema>;

/** A configuration value holding JSON (the engine's flat form keeps structured values as text), parsed. */
function jsonText(message: string) {
  return z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
  });
}

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
  providerEnv: jsonText("must be a mapping of variable names to strings")
    .pipe(
      z.record(
        z.string().regex(/^[A-Z][A-Z0-9_]*$/, "variable names are upper-case letters, digits and _"),
        // The values land single-quoted in a shell file on the hosts.
        z.string().regex(/^[^'\n\r]*$/, "values may not hold a single quote or a line break"),
      ),
    )
    .optional(),
  /**
   * Values of the services' secrets, as a JSON mapping `{"<service>": {"<secret>": "<value>"}}`
   * (the names the footprint's `workload.containers[].secrets` use). Every site that runs a
   * service needs its secrets, with the same values at the primary and the standby. Secret.
   * @default {}
   */
  serviceSecrets: jsonText("must be a JSON mapping of services to mappings of secret names to values")
    .pipe(
      z.record(
        slug,
        z.record(
          z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "secret names are lower-case letters, digits and dashes"),
          // One line each: they land in an env file (VAR=value per line).
          z
            .string()
            .min(1)
            .regex(/^[^\n\r\0]*$/, "values may not hold a line break"),
        ),
      ),
    )
    .optional(),
  /**
   * Where the site's Alertmanager sends notifications, as JSON: `{"kind":"email","to":"…","from":"…","smarthost":"host:port"}`
   * or `{"kind":"webhook","url":"https://…"}` (an SMTP relay or a webhook URL may carry a token). Secret.
   */
  alerting: jsonText('must be JSON: {"kind":"email","to","from","smarthost"} or {"kind":"webhook","url"}')
    .pipe(
      z.discriminatedUnion("kind", [
        z
          .strictObject({
            kind: z.literal("email"),
            to: z.email(),
            from: z.email(),
            smarthost: z
              .string()
              .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, "must be host:port of the SMTP relay")
              .refine((v) => Number(v.split(":").pop()) >= 1 && Number(v.split(":").pop()) <= 65535, "the port must be 1–65535"),
            /** SMTP login at the relay (587 usually requires one); both or neither. */
            username: z.string().min(1).optional(),
            password: z.string().min(1).optional(),
          })
          .refine((e) => (e.username === undefined) === (e.password === undefined), {
            message: "username and password come together",
            path: ["password"],
          }),
        z.strictObject({
          kind: z.literal("webhook"),
          // HTTPS only: the URL usually carries a token, which must not cross the internet in clear.
          url: z
            .url({ protocol: /^https$/, hostname: z.regexes.domain })
            .refine(
              (u) => !/[\s]/.test(u) && !/^https:\/\/[^/]*@/.test(u),
              "no spaces, and no user:password@ (put a token in the path or query)",
            ),
        }),
      ]),
    )
    .optional()
    .describe("Where the site's Alertmanager sends notifications (email or webhook), as JSON. Secret."),
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
