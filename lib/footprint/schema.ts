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
/** Where the storage hosts keep the restic repositories (`sftp:restic@<store>:/srv/backup/…`). */
export const BACKUP_ROOT = "/srv/backup";

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

const serviceSchema = z
  .strictObject({
    /** Instance name, unique in the footprint; also the first label of the standby name `<name>-<cc>.<domain>`. */
    name: slug,
    description: z.string().optional(),
    /** Host name the service's users reach it on. */
    publicName: hostname,
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
  .describe("The geo-redundant footprint: hosted services spread across providers, sites and countries.");

export type FootprintInput = z.input<typeof FootprintSchema>;
export type Footprint = z.infer<typeof FootprintSchema>;
export type FootprintService = Footprint["services"][number];
export type ServiceDatabase = FootprintService["data"]["databases"][number];
export type ServiceFileTree = FootprintService["data"]["files"][number];
export type ServiceMigration = NonNullable<FootprintService["migration"]>;
