/**
 * The one schema of `sites/footprint.yaml`: which services are hosted, where
 * each one runs, where it stands by, what data it holds and how much of it may
 * be lost. Types come from `z.infer`. Per-field rules live here; rules that
 * need the site models (placement, concentration, tunnels, backups) live in
 * `policies.ts`, so that a schema-valid footprint can still be checked as a
 * whole against every site.
 *
 * Only plain objects, enums, numbers and regexes: the schema converts to JSON
 * Schema (`z.toJSONSchema`) for editors without losing a rule that matters.
 */
import { z } from "zod";
import { slug } from "../model/schema";
import { DATABASE_PORTS, FENCE_SSH_PORT, HAPROXY_STATS_PORT, INGRESS_PORTS, KUBERNETES_API_PORT } from "../render/policy";
import { KUBERNETES_PORTS } from "../kubernetes/constants";

/** A DNS host name in lower case: labels of letters, digits and dashes, at least two labels. */
export const hostname = z
  .string()
  .max(253)
  .regex(
    /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    "must be a lower-case DNS name with at least two labels (for example cloud.example.com)",
  );

export const DATABASE_ENGINES = ["postgres", "mariadb"] as const;
export type DatabaseEngine = (typeof DATABASE_ENGINES)[number];

/**
 * How a database's standby copy is kept. `streaming` (postgres WAL streaming)
 * and `binlog` (mariadb GTID replication) are continuous; `dump` is periodic
 * and exists so that a service still on nightly dumps can be written down and
 * then rejected by the RPO policy with a clear message.
 */
export const DATABASE_REPLICATION = ["streaming", "binlog", "dump"] as const;
export type DatabaseReplication = (typeof DATABASE_REPLICATION)[number];

/** The continuous method that fits each engine. */
export const CONTINUOUS_METHOD: Record<DatabaseEngine, Exclude<DatabaseReplication, "dump">> = {
  postgres: "streaming",
  mariadb: "binlog",
};

export const STANDBY_MODES = ["standby", "read-only", "promoted"] as const;
export type StandbyMode = (typeof STANDBY_MODES)[number];

/** Steps of moving a service between sites, in the order they are taken. */
export const MIGRATION_STEPS = ["parallel", "switch-reads", "switch-writes", "done"] as const;
export type MigrationStep = (typeof MIGRATION_STEPS)[number];

const databaseSchema = z
  .strictObject({
    /** Database name, unique within the service (also the replication slot / channel name). */
    name: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/, "must be lower-case letters, digits and underscores (1–63 characters, starting with a letter)"),
    /** Database engine. */
    engine: z.enum(DATABASE_ENGINES),
    /**
     * How the standby copy is kept; must be continuous.
     * @default streaming for postgres, binlog for mariadb
     */
    replication: z.enum(DATABASE_REPLICATION).optional(),
  })
  .describe("A database of the service, replicated continuously to the standby.");

/** Top-level folders of the operating system: a replicated tree never lies there (rsync --delete would mirror them). */
/**
 * Where the storage pair keeps the off-site repositories its partner writes (`sftp:restic@<storage VIP>:/srv/backup/offsite/…`):
 * on the replicated data volume, so the copy follows the storage VIP across a takeover.
 */
export const BACKUP_ROOT = "/srv/backup";
/**
 * Where each storage host keeps the site's own repositories (`sftp:restic@<member>:/var/lib/standort/backup/<service>`):
 * on the member's own disk, outside the replicated volume, so the two local copies stay independent of each other.
 */
export const LOCAL_BACKUP_ROOT = "/var/lib/standort/backup";

export const SYSTEM_TREES = [
  "bin",
  "boot",
  "dev",
  "etc",
  "lib",
  "lib32",
  "lib64",
  "proc",
  "root",
  "run",
  "sbin",
  "sys",
  "tmp",
  "usr",
  "var",
];

const fileTreeSchema = z
  .strictObject({
    /** Name of the tree, unique within the service (used in job names). */
    name: slug,
    /** Absolute path of the tree on the storage hosts (the storage VIP's export). */
    path: z
      .string()
      .regex(
        /^(?:\/[A-Za-z0-9._-]+)+$/,
        "must be an absolute path of letters, digits, dots, dashes and underscores (for example /srv/mail/vmail)",
      )
      // rsync --delete and restic take the path as it stands: `..` would reach outside the tree.
      .refine((p) => !p.split("/").some((part) => part === "." || part === ".."), {
        message: "must not contain . or .. segments: name the tree itself (for example /srv/mail/vmail)",
      })
      .refine((p) => !SYSTEM_TREES.includes(p.split("/")[1]) && p.split("/").length >= 3, {
        message: `must be a tree of its own below a data folder such as /srv (not /, not one level deep, not under /${"{"}${SYSTEM_TREES.join(",")}${"}"})`,
      })
      // The stores keep the restic repositories there: a copy with --delete would run through them.
      .refine((p) => p !== BACKUP_ROOT && !p.startsWith(`${BACKUP_ROOT}/`), {
        message: `must not be at or under ${BACKUP_ROOT}, where the storage hosts keep the backup repositories`,
      }),
    /** Size in GB, for capacity planning and the report. */
    sizeGb: z.number().int().min(1).max(1048576),
    /**
     * Copy this tree more often than the service's RPO demands, in minutes.
     * Must not exceed the derived interval.
     * @default min(15, recovery.rpoMinutes, the writing site's storage.replicationIntervalMinutes)
     */
    intervalMinutes: z.number().int().min(1).max(1440).optional(),
  })
  .describe("A file tree of the service, copied to the standby's storage at least every 15 minutes.");

const migrationSchema = z
  .strictObject({
    /** The site the service moves to. */
    to: slug,
    /**
     * How far the move has come: `parallel` (both run, the new site is fed by
     * replication), `switch-reads` (reads are answered at the new site),
     * `switch-writes` (writes go to the new site; the old one is kept in sync
     * as the way back), `done` (only the new site runs it).
     */
    step: z.enum(MIGRATION_STEPS),
    /**
     * The standby once writes have moved; it must be a partner of `to`.
     * @default the service's standby
     */
    standby: slug.optional(),
  })
  .describe("Moving a service between sites: run old and new in parallel and switch step by step.");

/**
 * A container image pinned by digest (`<registry>/<repository>[:tag]@sha256:<64 hex>`): a tag alone can
 * move under a running site, so the same footprint would start other code on the next pull. Grammar:
 * the OCI distribution reference (github.com/distribution/reference, `reference.go`), lower-case names.
 */
export const pinnedImage = z
  .string()
  .max(512)
  .regex(
    /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$/,
    "must be an image pinned by digest: <registry>/<repository>[:tag]@sha256:<64 hex digits>",
  );

/** The prefix of the variables the platform sets in every container (`STANDORT_SERVICE`, `STANDORT_ACCESS`). */
export const STANDORT_ENV_PREFIX = "STANDORT_";
/** Top-level folders of a container that its kernel and runtime own. */
const CONTAINER_SYSTEM_TREES = ["proc", "sys", "dev", "run"];

/** An environment variable's name (POSIX: letters, digits, underscores, not starting with a digit). */
export const environmentName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
    "must be an environment variable name (letters, digits, underscores; not starting with a digit)",
  );

/** A secret's name: the key under `standort:serviceSecrets.<service>` in the stack configuration. */
export const secretName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, "must be lower-case letters, digits and dashes (1–63 characters, starting with a letter)");

/** Environment variables by name; values are plain text (secrets go in `secrets`). */
const environmentSchema = z.record(
  environmentName,
  z
    .string()
    .max(4096)
    .regex(/^[^\n\r\0]*$/, "must be one line"),
);

/** Host ports a workload may publish: unprivileged, below the instances' loopback ports (`UPSTREAM_PORT_BASE`). */
export const PUBLISHED_PORT_RANGE = { min: 1024, max: 19999 } as const;

/**
 * Ports the virtualization hosts' own services hold (the ingress, the databases, the fence's sshd, the
 * HAProxy stats, the Kubernetes API and kubelet): a container publishing one would take it from them.
 */
export const HOST_SERVICE_PORTS: ReadonlyArray<number> = [
  INGRESS_PORTS.readWrite,
  INGRESS_PORTS.readOnly,
  ...DATABASE_PORTS,
  FENCE_SSH_PORT,
  HAPROXY_STATS_PORT,
  KUBERNETES_API_PORT,
  KUBERNETES_PORTS.kubelet,
];

const containerSchema = z
  .strictObject({
    /** Container name, unique within the service (`<service>-<name>` on the host). */
    name: slug,
    /** The image, pinned by digest. */
    image: pinnedImage,
    /** The container's command (argv), if not the image's default. */
    command: z.array(z.string().min(1).max(4096)).min(1).optional(),
    /** The port the container serves HTTP on: the ingress sends the service's requests there. Exactly one container of a service has it. */
    port: z.number().int().min(1).max(65535).optional(),
    /** @default {} */
    environment: environmentSchema.default({}),
    /**
     * Environment variables filled from secrets: variable → secret name, resolved from the stack
     * configuration `standort:serviceSecrets` (`{"<service>": {"<secret>": "…"}}`, set with --secret).
     * @default {}
     */
    secrets: z.record(environmentName, secretName).default({}),
    /**
     * File trees of the service (`data.files[].name`) mounted from the storage pair's export; mounted
     * read-only in the read-only instance.
     * @default []
     */
    volumes: z
      .array(
        z.strictObject({
          /** A file tree of this service (`data.files[].name`). */
          tree: slug,
          /** Where the tree appears in the container. */
          mount: z
            .string()
            .regex(/^(?:\/[A-Za-z0-9._-]+)+$/, "must be an absolute path of letters, digits, dots, dashes and underscores")
            .refine((p) => !p.split("/").some((part) => part === "." || part === ".."), {
              message: "must not contain . or .. segments: name the folder itself",
            })
            // The kernel's and the runtime's own trees: a volume over them breaks the container.
            .refine((p) => !CONTAINER_SYSTEM_TREES.includes(p.split("/")[1]), {
              message: `must not be at or under /${"{"}${CONTAINER_SYSTEM_TREES.join(",")}${"}"}, which the kernel and the runtime own`,
            }),
        }),
      )
      .default([]),
    /**
     * Ports published on the virtualization hosts' addresses, for clients that do not speak HTTPS
     * through the proxies. Reachable only where the zone policy sends that port to the virtualization
     * hosts; otherwise the host's forward filter drops it (a port published for nobody is unreachable).
     * @default []
     */
    publish: z
      .array(
        z.strictObject({
          /** Port inside the container. */
          port: z.number().int().min(1).max(65535),
          /** Port on the host, unique across the footprint, in the published range, not one of the host's own services. */
          hostPort: z
            .number()
            .int()
            .min(PUBLISHED_PORT_RANGE.min)
            .max(PUBLISHED_PORT_RANGE.max)
            .refine((p) => !HOST_SERVICE_PORTS.includes(p), {
              message: `must not be a port of the host's own services (${HOST_SERVICE_PORTS.join(", ")})`,
            }),
          /** @default tcp */
          protocol: z.enum(["tcp", "udp"]).default("tcp"),
        }),
      )
      .default([]),
  })
  .describe("A container of the service's workload.");

const workloadSchema = z
  .strictObject({
    /** The containers that make up one instance of the service; one of them has `port`. */
    containers: z.array(containerSchema).min(1).max(16),
    /**
     * How the read-only instance is started (the standby's names, and the public name while the
     * primary is out): these variables are set on top of each container's environment, and its
     * volumes are mounted read-only. Must set at least one variable: an application that cannot be
     * told to refuse writes is not fit to answer from a replica.
     */
    readOnly: z.strictObject({ environment: environmentSchema.refine((e) => Object.keys(e).length > 0, "must set at least one variable") }),
    /**
     * Instances per mode on Kubernetes sites; compose sites run one per virtualization host.
     * @default 2
     */
    replicas: z.number().int().min(1).max(32).default(2),
  })
  .superRefine((w, ctx) => {
    const serving = w.containers.filter((c) => c.port !== undefined);
    if (serving.length !== 1)
      ctx.addIssue({
        code: "custom",
        path: ["containers"],
        message: `exactly one container must have a port (the ingress's upstream); ${serving.length} have one`,
      });
    const names = new Set<string>();
    // The platform's own variables (what the instance is) and the secrets' variables are set in one place only.
    const reserved = (key: string) => key.startsWith(STANDORT_ENV_PREFIX);
    for (const key of Object.keys(w.readOnly.environment)) {
      if (reserved(key))
        ctx.addIssue({
          code: "custom",
          path: ["readOnly", "environment", key],
          message: `${STANDORT_ENV_PREFIX}* variables are set by the platform`,
        });
      w.containers.forEach((c) => {
        if (key in c.secrets)
          ctx.addIssue({
            code: "custom",
            path: ["readOnly", "environment", key],
            message: `${key} is filled from secret ${c.secrets[key]} in container ${c.name}: the read-only instance would run without it`,
          });
      });
    }
    w.containers.forEach((c, i) => {
      for (const key of [...Object.keys(c.environment), ...Object.keys(c.secrets)])
        if (reserved(key))
          ctx.addIssue({
            code: "custom",
            path: ["containers", i, key in c.environment ? "environment" : "secrets", key],
            message: `${STANDORT_ENV_PREFIX}* variables are set by the platform`,
          });
      const mounts = new Set<string>();
      c.volumes.forEach((v, j) => {
        if (mounts.has(v.mount))
          ctx.addIssue({
            code: "custom",
            path: ["containers", i, "volumes", j, "mount"],
            message: `${v.mount} is mounted twice in ${c.name}`,
          });
        mounts.add(v.mount);
      });
      if (names.has(c.name)) ctx.addIssue({ code: "custom", path: ["containers", i, "name"], message: `${c.name} is used twice` });
      names.add(c.name);
      for (const key of Object.keys(c.secrets))
        if (key in c.environment)
          ctx.addIssue({
            code: "custom",
            path: ["containers", i, "secrets", key],
            message: `${key} is also set in environment: set it in one place`,
          });
    });
  })
  .describe(
    "What runs for a service: its containers, pinned images, ports, environment, secrets, volumes, and how its read-only instance starts.",
  );

const serviceSchema = z
  .strictObject({
    /** Instance name, unique in the footprint; also the first label of the standby name `<name>-<cc>.<domain>`. */
    name: slug,
    description: z.string().optional(),
    /** Host name the service's users reach it on. */
    publicName: hostname,
    /**
     * Path the name servers fetch over HTTPS under the public name at each
     * site answering it (PowerDNS `ifurlup`): a 2xx answer within 2 s means
     * the site serves the service. No quotes or backslashes (it sits in a LUA string).
     * @default /
     */
    healthPath: z
      .string()
      .regex(/^\/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$/, "is not an absolute URL path (starts with /, no quotes, spaces or backslashes)")
      .default("/"),
    /** The site that runs the service and takes its writes. */
    primary: slug,
    /** The site that keeps a live copy; another site, provider and country than the primary. */
    standby: slug,
    /**
     * What the standby does: `standby` (keeps the copy, answers its standby
     * name read-only), `read-only` (answers the public name read-only while the
     * primary is out), `promoted` (takes writes; the primary becomes the standby).
     * @default standby
     */
    mode: z.enum(STANDBY_MODES).default("standby"),
    data: z
      .strictObject({
        /** @default [] */
        databases: z.array(databaseSchema).default([]),
        /** @default [] */
        files: z.array(fileTreeSchema).default([]),
      })
      .prefault({}),
    recovery: z.strictObject({
      /** Most data, in minutes of writes, the service may lose when its primary is lost. */
      rpoMinutes: z.number().int().min(1).max(10080),
      /** Longest time, in minutes, until the service takes writes again after losing its primary. */
      rtoMinutes: z.number().int().min(1).max(10080),
    }),
    /** A move of the service to another site, in progress. */
    migration: migrationSchema.optional(),
    /** What runs: containers on the site's virtualization hosts (compose or Kubernetes, as the site says). */
    workload: workloadSchema,
  })
  .superRefine((s, ctx) => {
    const trees = new Set(s.data.files.map((f) => f.name));
    s.workload.containers.forEach((c, i) =>
      c.volumes.forEach((v, j) => {
        if (!trees.has(v.tree))
          ctx.addIssue({
            code: "custom",
            path: ["workload", "containers", i, "volumes", j, "tree"],
            message: `${v.tree} is not a file tree of ${s.name} (data.files: ${[...trees].join(", ") || "none"})`,
          });
      }),
    );
  })
  .describe("A hosted service: where it runs, where it stands by, what data it holds.");

export const FootprintSchema = z
  .strictObject({
    /** Where editors find this schema (ignored by the library). */
    $schema: z.string().optional(),
    /** DNS domain of the standby names (`<service>-<cc>.<domain>`). */
    domain: hostname,
    policy: z
      .strictObject({
        /**
         * Largest share of services whose primary one provider, or one
         * country, may hold (0 < share ≤ 1).
         * @default 0.5
         */
        maxPrimaryShare: z.number().gt(0).max(1).default(0.5),
      })
      .prefault({}),
    /** The hosted services. */
    services: z.array(serviceSchema).min(1),
  })
  .superRefine((f, ctx) => {
    // Compose sites publish on every virtualization host: a host port belongs to one service in the whole footprint.
    const taken = new Map<string, string>();
    f.services.forEach((s, i) =>
      s.workload.containers.forEach((c, j) =>
        c.publish.forEach((p, k) => {
          const key = `${p.protocol}/${p.hostPort}`;
          const owner = taken.get(key);
          if (owner)
            ctx.addIssue({
              code: "custom",
              path: ["services", i, "workload", "containers", j, "publish", k, "hostPort"],
              message: `${key} is already published by ${owner}`,
            });
          else taken.set(key, `${s.name}/${c.name}`);
        }),
      ),
    );
  })
  .describe("The geo-redundant footprint: hosted services spread across providers, sites and countries.");

export type FootprintInput = z.input<typeof FootprintSchema>;
export type Footprint = z.infer<typeof FootprintSchema>;
export type FootprintService = Footprint["services"][number];
export type ServiceDatabase = FootprintService["data"]["databases"][number];
export type ServiceFileTree = FootprintService["data"]["files"][number];
export type ServiceMigration = NonNullable<FootprintService["migration"]>;
export type ServiceWorkload = FootprintService["workload"];
export type WorkloadContainer = ServiceWorkload["containers"][number];
