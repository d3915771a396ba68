/**
 * The credentials the replication and backup jobs need, as data: which
 * credential exists, which stack generates it, which other stacks read it from
 * the generator's outputs, and which hosts (or Kubernetes Secrets) receive
 * which file with which content and mode. Pure: no Pulumi, no I/O. The stack
 * (`components/replication-credentials`) generates the values with
 * `@pulumi/tls` and `@pulumi/random` and renders with them; the offline plan
 * renders with placeholders that name each secret (`placeholderCredentialValues`).
 *
 * Sources of facts: the jobs (`planJobs` in ./jobs, the whole footprint, so a
 * site also sees the jobs that reach it) and the site models (storage pair
 * members and VIPs, supernets, virtualization hosts).
 *
 * File formats: sshd(8) AUTHORIZED_KEYS FILE FORMAT and SSH_KNOWN_HOSTS FILE
 * FORMAT, sshd_config(5) and ssh_config(5) (`Match`), libpq's pgpass and
 * pg_service.conf, MariaDB option files (`[client]`), PEM (RFC 7468; text
 * between certificates of a bundle is ignored), X.509 (RFC 5280) and the
 * engines' SQL (PostgreSQL `CREATE ROLE`/`\gexec`, MariaDB `CREATE USER`).
 * Every generated password is letters and digits only, so none of these needs
 * quoting.
 */
import { KeyObject, X509Certificate, createECDH, createHash, createHmac, createPrivateKey, createPublicKey } from "node:crypto";
import { z } from "zod";
import { SiteModel } from "../model/model";
import { cidr } from "../net/ipv4";
import { RenderedFile } from "../render/types";
import { ed25519KeyFromSeed } from "../render/sshkey";
import {
  BACKUP_SECRETS_DIR,
  BackupJob,
  DatabaseReplicationJob,
  FileCopyJob,
  JOB_SECRETS,
  PlannedJob,
  REPLICATION_SSH_DIR,
  REPLICA_RECEIVE_COMMAND,
  jobRunner,
  replicationKeyFile,
} from "./jobs";
import { DATABASE_TLS, REPLICATION_USER, renderDatabaseFiles } from "./database-files";
import { LOCAL_BACKUP_ROOT } from "./schema";

/** Where the storage pair's shared sshd host key and the restic user's authorized keys live on the storage hosts. */
export const STORAGE_SSHD_DIR = "/etc/standort/sshd";
/** The storage pair's host key (both members present it, so the VIP keeps its identity across a takeover). */
export const STORAGE_HOST_KEY = `${STORAGE_SSHD_DIR}/ssh_host_ed25519_key`;
/** Keys the `restic` user accepts: one per writing site, sftp only. Readable by that user (sshd reads it with its uid). */
export const RESTIC_AUTHORIZED_KEYS = `${STORAGE_SSHD_DIR}/restic_authorized_keys`;
/** Keys root accepts for replication: one per source site, each bound to the forced receive command. */
export const REPLICATION_AUTHORIZED_KEYS = `${REPLICATION_SSH_DIR}/authorized_keys`;
/** The sshd drop-in of the storage hosts (Debian's sshd_config includes `sshd_config.d/*.conf` first). */
export const STORAGE_SSHD_DROPIN = "/etc/ssh/sshd_config.d/standort-storage.conf";
/** The ssh client drop-in that makes restic's sftp connections (`restic@<store>`) use the backup key and pinned host keys. */
export const BACKUP_SSH_CLIENT_DROPIN = "/etc/ssh/ssh_config.d/standort-backup.conf";
/** Where database credentials live on the virtualization hosts, beside the replication settings (`<job key>.conf`). */
export const DATABASE_SECRETS_DIR = "/etc/standort/databases";
/** The replica's libpq password file, named by `passfile=` in the rendered `primary_conninfo`. */
export const REPLICATION_PGPASS = `${DATABASE_SECRETS_DIR}/pgpass`;
/** Database user of the replication connections (`lib/footprint/database-files.ts`). */
export { REPLICATION_USER } from "./database-files";
/** Database user the backup dumps log in as: read-only, TLS only, created from `<service>-<db>.backup.sql` (`backupUserSqlFile`). */
export const BACKUP_DUMP_USER = "standort_backup";
/** Length of every generated password: letters and digits only (no quoting anywhere), 32 × log2(62) ≈ 190 bits. */
export const PASSWORD_LENGTH = 32;
/** The site's database CA as the backup dumps verify their endpoints with (`sslrootcert=`, `ssl-ca=`): beside their other settings. */
export const BACKUP_DATABASE_CA = `${BACKUP_SECRETS_DIR}/database-ca.crt`;
/**
 * Lifetimes of the database TLS certificates (`tls.SelfSignedCert`, `tls.LocallySignedCert`), in hours. A
 * certificate is replaced at the first stack run within its early-renewal window; a new CA re-signs the site's
 * server certificates at once, and peers trust it from their next run (their bundles hold what they last read).
 */
export const DATABASE_TLS_VALIDITY = {
  ca: { validityPeriodHours: 10 * 8760, earlyRenewalHours: 8760 },
  server: { validityPeriodHours: 2 * 8760, earlyRenewalHours: 90 * 24 },
} as const;

export type CredentialKind =
  | "replication-ssh-key"
  | "storage-host-key"
  | "backup-ssh-key"
  | "restic-password"
  | "database-replication-password"
  | "database-backup-password"
  | "database-tls-ca"
  | "database-tls-server";

/**
 * What a credential is generated with: an Ed25519 key pair (OpenSSH formats), a password, or an ECDSA P-256
 * key with a certificate (PEM): a site's self-signed database CA, or a server certificate that CA signs.
 */
export type CredentialGenerator = "tls.PrivateKey" | "random.RandomPassword" | "tls.SelfSignedCert" | "tls.LocallySignedCert";

/** One credential of the footprint. */
export interface Credential {
  /** Stable key, unique in the footprint: child resource names (`<component>-<id>`) and output keys. */
  readonly id: string;
  readonly kind: CredentialKind;
  readonly generator: CredentialGenerator;
  /** The site whose stack generates it. */
  readonly site: string;
  /** Other sites whose stacks read it from the generator's `credentials` output (a public key, or the secret itself). */
  readonly readers: ReadonlyArray<string>;
  /**
   * What a peer reads: the public key or the certificate (not secret; the output's `publicKeys`, `certificates`),
   * the value (secret, only where the peer's hosts need it), or nothing.
   */
  readonly publish: "public-key" | "certificate" | "secret" | "none";
  /** One line: what it is for. */
  readonly description: string;
  /** Certificates: the subject's common name. */
  readonly commonName?: string;
  /** Server certificates: the DNS names (subjectAltName) it is valid for. */
  readonly dnsNames?: ReadonlyArray<string>;
  /** Server certificates: the id of the CA credential that signs it. */
  readonly issuer?: string;
}

/**
 * Resolved values by credential id. A value that is absent is one a peer's
 * stack has not published yet: the files that need it wait (a comment saying
 * what for) instead of failing.
 */
export interface CredentialValues {
  /** Passwords, OpenSSH private keys and the PEM private keys of the certificates, by credential id. */
  readonly secrets: Readonly<Record<string, string | undefined>>;
  /** `ssh-ed25519 <base64>` public keys of the key credentials, by credential id. */
  readonly publicKeys: Readonly<Record<string, string | undefined>>;
  /** PEM certificates of the certificate credentials (database CAs and servers), by credential id. Public. */
  readonly certificates: Readonly<Record<string, string | undefined>>;
}

/** What a site's stack publishes in its `credentials` output and a peer reads through its StackReference. */
const PEM_CERTIFICATE = /^-----BEGIN CERTIFICATE-----\r?\n(?:[A-Za-z0-9+/=]{1,76}\r?\n)+-----END CERTIFICATE-----\r?\n?$/;
export const PeerCredentialsSchema = z
  .object({
    publicKeys: z.record(z.string(), z.string().regex(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/, "an ssh-ed25519 public key")).default({}),
    // The database CA's certificate (`db-tls-ca-<site>`): public, for the bundles of the sites it replicates with.
    certificates: z.record(z.string(), z.string().regex(PEM_CERTIFICATE, "one PEM certificate")).default({}),
    secrets: z.record(z.string(), z.string().regex(/^[A-Za-z0-9]{16,}$/, "a generated password (16+ letters and digits)")).default({}),
  })
  .strict();
export type PeerCredentials = z.infer<typeof PeerCredentialsSchema>;

/**
 * A peer's `credentials` output, validated: undefined (the peer has not run
 * yet, or publishes none) gives no values; anything malformed is refused with
 * the peer and the field named, so a broken peer never writes a broken file.
 */
export function parsePeerCredentials(peer: string, value: unknown): PeerCredentials {
  if (value === undefined || value === null) return { publicKeys: {}, secrets: {}, certificates: {} };
  const result = PeerCredentialsSchema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
  // Values never appear in the message: only paths and rules.
  throw new Error(`stack output credentials of ${peer}: ${problems.join("; ")}`);
}

// ---------------------------------------------------------------------------
// Credential ids

export const credentialIds = {
  replicationSsh: (from: string, to: string) => `replication-ssh-${from}-to-${to}`,
  storageHostKey: (site: string) => `storage-host-key-${site}`,
  backupSsh: (site: string) => `backup-ssh-${site}`,
  restic: (service: string, store: string) => `restic-${service}-${store}`,
  databaseReplication: (service: string, database: string, from: string, to: string) =>
    `db-replication-${service}-${database}-${from}-to-${to}`,
  databaseBackup: (service: string, database: string) => `db-backup-${service}-${database}`,
  databaseTlsCa: (site: string) => `db-tls-ca-${site}`,
  databaseTlsServer: (host: string) => `db-tls-server-${host}`,
} as const;

function storagePair(site: SiteModel) {
  const pair = site.pairs.find((p) => p.role === "storage");
  if (!pair) throw new Error(`${site.name} has no storage pair`);
  return pair;
}

function storageVip(site: SiteModel): string {
  return storagePair(site).vips[0]?.address ?? "";
}

function hostsOf(site: SiteModel, role: "storage" | "virtualization"): string[] {
  return site.hosts.filter((h) => h.role === role).map((h) => h.name);
}

function siteByName(sites: ReadonlyArray<SiteModel>, name: string): SiteModel {
  const site = sites.find((s) => s.name === name);
  if (!site) throw new Error(`credentials: ${name} is not a site`);
  return site;
}

/**
 * The site and storage hosts of a backup's store: its host by name (a local
 * store), or, for a store given by a pair's storage VIP (the off-site copy at
 * the standby), both members of that pair, since either may hold the VIP.
 */
export function storeOf(job: BackupJob, sites: ReadonlyArray<SiteModel>): { site: string; hosts: string[] } {
  for (const site of sites) {
    if (site.hosts.some((h) => h.name === job.store.host && h.role === "storage")) return { site: site.name, hosts: [job.store.host] };
  }
  for (const site of sites) {
    const pair = site.pairs.find((p) => p.role === "storage");
    if (pair?.vips.some((v) => v.address === job.store.address)) return { site: site.name, hosts: [...pair.members] };
  }
  throw new Error(`credentials: the store ${job.store.host} (${job.store.address}) of ${job.key} is no storage host of any site`);
}

/** The replication path of a database job: source and replica site. */
function databasePath(job: DatabaseReplicationJob): { from: string; to: string } {
  return job.side === "source" ? { from: job.site, to: job.peer.site } : { from: job.peer.site, to: job.site };
}

export { replicationKeyFile } from "./jobs";

/** The repository password file of one backup: one password per service and store, so each copy stands alone. */
export function resticPasswordFile(job: Pick<BackupJob, "service" | "store">): string {
  return `${BACKUP_SECRETS_DIR}/${job.service}.${job.store.host}.password`;
}

/** The key of a backup's repository password in the `JOB_SECRETS.backup(service)` Secret. */
export function resticPasswordSecretKey(job: Pick<BackupJob, "store">): string {
  return `restic.${job.store.host}.password`;
}
/** The statements that create the backup dump user of a database (secret: they carry its password). */
export function backupUserSqlFile(service: string, database: string): string {
  return `${DATABASE_SECRETS_DIR}/${service}-${database}.backup.sql`;
}

/** PostgreSQL only: the `pg_hba.conf` lines that admit the dump user (public). */
export function backupUserHbaFile(service: string, database: string): string {
  return `${DATABASE_SECRETS_DIR}/${service}-${database}.backup.hba`;
}

/**
 * The database endpoints `siteName` runs, sorted: both ends of its replication
 * paths and the databases its backups dump. Its server certificates name them.
 */
export function databaseEndpointsAt(siteName: string, jobs: ReadonlyArray<PlannedJob>): string[] {
  const names = new Set<string>();
  for (const job of jobs) {
    if (job.site !== siteName) continue;
    if (job.kind === "database-replication") names.add(job.endpoint);
    if (job.kind === "backup") for (const db of job.databases) names.add(db.endpoint);
  }
  return [...names].sort();
}

/** The sites `siteName` replicates databases with (either direction), sorted: their CAs join its bundle. */
export function databasePeersOf(siteName: string, jobs: ReadonlyArray<PlannedJob>): string[] {
  const peers = jobs
    .filter((j): j is DatabaseReplicationJob => j.kind === "database-replication" && j.site === siteName)
    .map((j) => j.peer.site);
  return [...new Set(peers)].sort();
}

/**
 * Where the backup dumps of `site` connect from: the storage hosts' data
 * addresses (timers, systemd) or the application segment of the cluster
 * nodes (CronJobs, Kubernetes), as CIDRs.
 */
export function dumpClientNetworks(site: SiteModel): string[] {
  if (jobRunner(site, "backup") === "kubernetes") {
    const app = site.segments.find((s) => s.name === "app");
    if (!app) throw new Error(`credentials: ${site.name} has no app segment`);
    return [app.cidr];
  }
  return hostsOf(site, "storage").map((name) => {
    const address = site.hosts.find((h) => h.name === name)?.interfaces.find((i) => i.segment === "data")?.address;
    if (!address) throw new Error(`credentials: ${name} has no data-segment address`);
    return `${address}/32`;
  });
}

/**
 * Every credential of the footprint, sorted by id. `jobs` are all jobs of the
 * footprint (`planJobs`), so a credential's readers are known from either end.
 * Throws on an id used twice (a programming error: ids are built from unique keys).
 */
export function planCredentials(sites: ReadonlyArray<SiteModel>, jobs: ReadonlyArray<PlannedJob>): Credential[] {
  const found = new Map<string, Credential>();
  const readers = new Map<string, Set<string>>();
  const add = (c: Omit<Credential, "readers">, reader?: string) => {
    const existing = found.get(c.id);
    if (existing && (existing.kind !== c.kind || existing.site !== c.site)) throw new Error(`credentials: ${c.id} is planned twice`);
    if (!existing) found.set(c.id, { ...c, readers: [] });
    const set = readers.get(c.id) ?? new Set<string>();
    if (reader && reader !== c.site) set.add(reader);
    readers.set(c.id, set);
  };
  const hostKey = (site: string, reader: string) =>
    add(
      {
        id: credentialIds.storageHostKey(site),
        kind: "storage-host-key",
        generator: "tls.PrivateKey",
        site,
        publish: "public-key",
        description: `sshd host key of ${site}'s storage pair (both members, so the VIP keeps it across a takeover)`,
      },
      reader,
    );

  for (const job of jobs) {
    if (job.kind === "file-copy") {
      add(
        {
          id: credentialIds.replicationSsh(job.site, job.target.site),
          kind: "replication-ssh-key",
          generator: "tls.PrivateKey",
          site: job.site,
          publish: "public-key",
          description: `rsync over ssh from ${job.site}'s storage to ${job.target.site}'s storage VIP (forced receive command)`,
        },
        job.target.site,
      );
      hostKey(job.target.site, job.site);
    } else if (job.kind === "backup") {
      const store = storeOf(job, sites);
      add(
        {
          id: credentialIds.backupSsh(job.site),
          kind: "backup-ssh-key",
          generator: "tls.PrivateKey",
          site: job.site,
          publish: "public-key",
          description: `restic's sftp login of ${job.site} as restic@<store> (internal-sftp only)`,
        },
        store.site,
      );
      hostKey(store.site, job.site);
      add({
        id: credentialIds.restic(job.service, job.store.host),
        kind: "restic-password",
        generator: "random.RandomPassword",
        site: job.site,
        publish: "none",
        description: `restic repository password of ${job.service} in the store ${job.store.host}`,
      });
      for (const db of job.databases) {
        add({
          id: credentialIds.databaseBackup(job.service, db.name),
          kind: "database-backup-password",
          generator: "random.RandomPassword",
          site: job.site,
          publish: "none",
          description: `password of the dump user ${BACKUP_DUMP_USER} of ${job.service}/${db.name} (${db.engine}) at ${job.site}`,
        });
      }
    } else if (job.kind === "database-replication") {
      const { from, to } = databasePath(job);
      add(
        {
          id: credentialIds.databaseReplication(job.service, job.database, from, to),
          kind: "database-replication-password",
          generator: "random.RandomPassword",
          site: from,
          publish: "secret",
          description: `password of ${REPLICATION_USER} for ${job.service}/${job.database} (${job.engine}) replicated ${from} -> ${to}`,
        },
        to,
      );
    }
  }
  // Database TLS: a CA per site that runs databases (read by every site it replicates with), a server certificate
  // per virtualization host (any of them may run any of the site's databases, so each names all the endpoints).
  for (const site of sites) {
    const endpoints = databaseEndpointsAt(site.name, jobs);
    if (endpoints.length === 0) continue;
    const ca = {
      id: credentialIds.databaseTlsCa(site.name),
      kind: "database-tls-ca",
      generator: "tls.SelfSignedCert",
      site: site.name,
      publish: "certificate",
      description: `database TLS CA of ${site.name}: signs its servers' certificates; in the bundles of the sites it replicates with`,
      commonName: `standort database CA ${site.name}`,
    } as const;
    const peers = databasePeersOf(site.name, jobs);
    if (peers.length === 0) add(ca);
    for (const peer of peers) add(ca, peer);
    for (const host of hostsOf(site, "virtualization")) {
      add({
        id: credentialIds.databaseTlsServer(host),
        kind: "database-tls-server",
        generator: "tls.LocallySignedCert",
        site: site.name,
        publish: "none",
        description: `database server certificate of ${host} (${site.name}'s CA), valid for the ${endpoints.length} endpoint(s) of ${site.name}`,
        commonName: host,
        dnsNames: endpoints,
        issuer: ca.id,
      });
    }
  }
  return [...found.values()]
    .map((c) => ({ ...c, readers: [...(readers.get(c.id) ?? [])].sort() }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** Whether a credential is a certificate (with its ECDSA key): a database CA or server certificate. */
export function isCertificate(c: Pick<Credential, "generator">): boolean {
  return c.generator === "tls.SelfSignedCert" || c.generator === "tls.LocallySignedCert";
}

/**
 * The files whose contents depend on the database TLS values (certificates and their keys): the component
 * renders them apart, so a certificate not issued yet (unknown at preview) leaves every other file known.
 */
export const DATABASE_TLS_FILES: ReadonlyArray<string> = [DATABASE_TLS.ca, DATABASE_TLS.cert, DATABASE_TLS.key, BACKUP_DATABASE_CA];

/** The key of the site's database CA in a `JOB_SECRETS.backup` Secret (mounted at `BACKUP_SECRETS_DIR`). */
export const BACKUP_DATABASE_CA_SECRET_KEY = "database-ca.crt";

/** The credentials `siteName`'s stack generates. */
export function generatedBy(credentials: ReadonlyArray<Credential>, siteName: string): Credential[] {
  return credentials.filter((c) => c.site === siteName);
}

/** The sites whose `credentials` output `siteName`'s stack reads, sorted. */
export function credentialPeers(credentials: ReadonlyArray<Credential>, siteName: string): string[] {
  return [...new Set(credentials.filter((c) => c.readers.includes(siteName)).map((c) => c.site))].sort();
}

/**
 * Values that name each secret instead of holding it, for the offline plan
 * (as `placeholderKeys` does for the tunnels): `(secret: standort:credentials.<id>)`.
 */
export function placeholderCredentialValues(credentials: ReadonlyArray<Credential>): CredentialValues {
  return {
    secrets: Object.fromEntries(credentials.map((c) => [c.id, `(secret: standort:credentials.${c.id})`])),
    publicKeys: Object.fromEntries(
      credentials.filter((c) => c.generator === "tls.PrivateKey").map((c) => [c.id, `ssh-ed25519 (public key of ${c.id}, from ${c.site})`]),
    ),
    certificates: Object.fromEntries(credentials.filter(isCertificate).map((c) => [c.id, `(certificate ${c.id}, from ${c.site})`])),
  };
}

/**
 * Working values derived from `seed` (keys by `ed25519KeyFromSeed`, passwords
 * from SHA-256, database CAs and server certificates by `derivedEcdsaKey` and
 * `derivedCertificate`): every site sees the same value for a credential, as
 * if every stack had run and published. For the twin and tests only: a
 * derived value is public knowledge and never deployed.
 */
export function derivedCredentialValues(credentials: ReadonlyArray<Credential>, seed: string): CredentialValues {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const secrets: Record<string, string> = {};
  const publicKeys: Record<string, string> = {};
  const certificates: Record<string, string> = {};
  // CAs first: the server certificates need their issuer's key and certificate.
  const order = (c: Credential) => (c.generator === "tls.LocallySignedCert" ? 1 : 0);
  for (const c of [...credentials].sort((a, b) => order(a) - order(b))) {
    if (c.generator === "tls.SelfSignedCert" || c.generator === "tls.LocallySignedCert") {
      const key = derivedEcdsaKey(`${seed}:${c.id}`);
      const issuer = c.issuer === undefined ? undefined : { privateKeyPem: secrets[c.issuer], certPem: certificates[c.issuer] };
      if (issuer && (issuer.privateKeyPem === undefined || issuer.certPem === undefined))
        throw new Error(`credentials: ${c.id}: its issuer ${c.issuer} is not planned`);
      secrets[c.id] = key.privateKeyPem;
      certificates[c.id] = derivedCertificate({
        subjectKeyPem: key.privateKeyPem,
        commonName: c.commonName ?? c.id,
        dnsNames: c.dnsNames,
        ca: c.generator === "tls.SelfSignedCert",
        issuer,
      });
    } else if (c.generator === "tls.PrivateKey") {
      const key = ed25519KeyFromSeed(`${seed}:${c.id}`);
      secrets[c.id] = key.privateKeyOpenssh;
      publicKeys[c.id] = key.publicKeyOpenssh.trim();
    } else {
      const bytes = createHash("sha256").update(`${seed}:${c.id}`).digest();
      secrets[c.id] = [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
    }
  }
  return { secrets, publicKeys, certificates };
}

/**
 * The replication password of each database replication job `siteName`
 * runs, by job key (both sides: the source creates the user with it, the
 * replica connects with it); undefined while the source's stack has not
 * published it. For renderers that take the password as an argument
 * (`renderDatabaseFiles` in ./database-files).
 */
export function databaseReplicationPasswords(
  siteName: string,
  jobs: ReadonlyArray<PlannedJob>,
  values: CredentialValues,
): Record<string, string | undefined> {
  return Object.fromEntries(
    jobs
      .filter((j): j is DatabaseReplicationJob => j.kind === "database-replication" && j.site === siteName)
      .map((job) => {
        const { from, to } = databasePath(job);
        return [job.key, values.secrets[credentialIds.databaseReplication(job.service, job.database, from, to)]];
      }),
  );
}

/** What one site's hosts and Secrets receive. */
export interface CredentialDelivery {
  /** Files by host name, sorted by path. Paths never depend on the values (only contents do), so a plan shows every file. */
  readonly hostFiles: Readonly<Record<string, ReadonlyArray<RenderedFile>>>;
  /** Kubernetes Secrets (name → data key → content) for the CronJobs of a Kubernetes site; every entry is secret. */
  readonly kubernetesSecrets: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** One line per file or Secret key that waits for a peer's stack. */
  readonly waiting: ReadonlyArray<string>;
}

const HEADER = "# Generated by standort from sites/footprint.yaml and the site files: do not edit.";

const line = (text: string) => (text.endsWith("\n") ? text : `${text}\n`);
const secretFile = (path: string, content: string, owner?: string): RenderedFile => ({
  path,
  content: line(content),
  mode: "0600",
  ...(owner ? { owner } : {}),
  secret: true,
  delivery: "ssh",
});
const publicFile = (path: string, content: string, extra: Partial<RenderedFile> = {}): RenderedFile => ({
  path,
  content: line(content),
  mode: "0644",
  secret: false,
  delivery: "ssh",
  ...extra,
});

/** A SQL string literal (a quote doubled; backslashes too for MariaDB's default mode), as in ./database-files. */
function sqlLiteral(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** A MariaDB identifier in backquotes (a backquote doubled). */
function sqlIdentifier(name: string): string {
  return `\`${name.replace(/`/g, "``")}\``;
}

/** How a MariaDB account's host matches a CIDR: the address itself for a /32, else `a.b.c.d/m.m.m.m`. */
function mariadbHost(prefix: string): string {
  const c = cidr(prefix);
  const dotted = (v: number) => [24, 16, 8, 0].map((s) => (v >>> s) & 255).join(".");
  if (c.length === 32) return dotted(c.network);
  const mask = c.length === 0 ? 0 : (0xffffffff << (32 - c.length)) >>> 0;
  return `${dotted(c.network)}/${dotted(mask)}`;
}

/** Only the key type and base64 of an OpenSSH public key line (drops a trailing comment or newline); a placeholder stays whole. */
function keyOnly(publicKey: string): string {
  const key = /^ssh-ed25519 [A-Za-z0-9+/]+=*/.exec(publicKey.trim());
  return key ? key[0] : publicKey.trim();
}

/**
 * How the sshd drop-in is checked before the swap: sshd -t of a configuration
 * that includes only the staged file, with a throw-away host key (the pair's
 * key may be staged beside its target, not in place yet).
 */
const SSHD_DROPIN_CHECK = [
  "sh",
  "-c",
  `d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f "$d/k" && printf 'Include %s\\n' "$1" > "$d/c" && mkdir -p /run/sshd && /usr/sbin/sshd -t -f "$d/c" -h "$d/k"; r=$?; rm -rf "$d"; exit $r`,
  "sshd-dropin-check",
  "{file}",
];

/**
 * Renders every credential file of `model`'s hosts and the Secrets of its
 * backup CronJobs from `values`. `jobs` are all jobs of the footprint.
 *
 * - Replication source (file copies from here): the private key per target
 *   (`replicationKeyFile`) and `known_hosts` (`<target VIP> <target pair host key>`),
 *   on the storage hosts, at every site (file copies always run there).
 * - Replication target / backup store: on those storage hosts the pair's host
 *   key, root's `authorized_keys` (`restrict,from="<source supernet>",command="…receive"`),
 *   the restic user's keys (`restrict,from="<writer supernet>",command="internal-sftp -d /var/lib/standort/backup"`)
 *   and the sshd drop-in that uses them.
 * - Backup writer: the backup key, `known_hosts` of the stores, the ssh client
 *   drop-in, a restic password per store, `pg_service.conf`, `pgpass` and
 *   `<db>.cnf` for the dump user, on the storage hosts (systemd) or in
 *   `JOB_SECRETS.backup(service)` (Kubernetes), with the site's database CA
 *   (`BACKUP_DATABASE_CA`) they verify their endpoints with; on the writer's
 *   virtualization hosts the statements that create the dump user
 *   (`<service>-<db>.backup.sql`, secret) and, for postgres, its `pg_hba.conf`
 *   lines (`.backup.hba`), admitting it only from where the dumps run
 *   (`dumpClientNetworks`) and only over TLS.
 * - Database replication: `<job key>.sql` (the statements with the path's
 *   password, by `renderDatabaseFiles`) on the virtualization hosts of both
 *   ends, and the replica's `pgpass` for postgres.
 * - Database TLS: on every virtualization host of a site that runs databases
 *   its own key (`DATABASE_TLS.key`, secret) and certificate for all the
 *   site's endpoints (`DATABASE_TLS.cert`), and the CA bundle
 *   (`DATABASE_TLS.ca`): the site's own CA and the CA of every site it
 *   replicates with, a waiting comment for a peer not run yet.
 */
export function renderCredentialFiles(
  model: SiteModel,
  sites: ReadonlyArray<SiteModel>,
  jobs: ReadonlyArray<PlannedJob>,
  values: CredentialValues,
): CredentialDelivery {
  const site = model.name;
  const files = new Map<string, RenderedFile[]>();
  const secrets: Record<string, Record<string, string>> = {};
  const waiting: string[] = [];
  const put = (hosts: ReadonlyArray<string>, file: RenderedFile) => {
    for (const host of hosts) {
      const list = files.get(host) ?? [];
      if (list.some((f) => f.path === file.path)) throw new Error(`credentials: ${host}: ${file.path} rendered twice`);
      list.push(file);
      files.set(host, list);
    }
  };
  const putSecret = (name: string, key: string, content: string) => {
    secrets[name] ??= {};
    if (key in secrets[name]) throw new Error(`credentials: Secret ${name}: ${key} rendered twice`);
    secrets[name][key] = line(content);
  };
  const secretOf = (id: string, from: string, what: string): string | undefined => {
    const value = values.secrets[id];
    if (value === undefined) waiting.push(`${what}: waits for ${from}'s stack to publish ${id}`);
    return value;
  };
  const publicOf = (id: string, from: string, what: string): string | undefined => {
    const value = values.publicKeys[id];
    if (value === undefined) waiting.push(`${what}: waits for ${from}'s stack to publish the public key ${id}`);
    return value === undefined ? undefined : keyOnly(value);
  };
  const certificateOf = (id: string, from: string, what: string): string | undefined => {
    const value = values.certificates[id];
    if (value === undefined) waiting.push(`${what}: waits for ${from}'s stack to publish the certificate ${id}`);
    return value === undefined ? undefined : value.trim();
  };
  const waitLine = (from: string, id: string, then: string) =>
    `# Waiting for ${from}: its stack has not published ${id} yet. Deploy ${from}, then ${site} again; ${then} appears then.`;
  // Backups only: file copies run on the storage hosts at every site.
  const runner = jobRunner(model, "backup");
  const storage = hostsOf(model, "storage");
  const virtualization = hostsOf(model, "virtualization");

  // Replication source: one key per target, the targets' pair host keys pinned.
  const copies = jobs.filter((j): j is FileCopyJob => j.kind === "file-copy" && j.site === site);
  const targets = [...new Set(copies.map((j) => j.target.site))].sort();
  if (targets.length > 0) {
    const keyFiles = targets.map((target) => {
      const id = credentialIds.replicationSsh(site, target);
      const name = replicationKeyFile(model, target);
      return { name, content: secretOf(id, site, `${REPLICATION_SSH_DIR}/${name}`) ?? waitLine(site, id, "the key") };
    });
    const knownHosts = [
      HEADER,
      "# The storage VIP of each replication target with its pair's host key: both members present it.",
      ...targets.map((target) => {
        const id = credentialIds.storageHostKey(target);
        const key = publicOf(id, target, `${REPLICATION_SSH_DIR}/known_hosts (${target})`);
        return key ? `${storageVip(siteByName(sites, target))} ${key}` : waitLine(target, id, `the line of ${target}`);
      }),
    ].join("\n");
    for (const k of keyFiles) put(storage, secretFile(`${REPLICATION_SSH_DIR}/${k.name}`, k.content));
    put(storage, publicFile(`${REPLICATION_SSH_DIR}/known_hosts`, knownHosts));
  }

  // Replication target and backup store: what the storage pair's sshd accepts.
  const incoming = jobs.filter((j): j is FileCopyJob => j.kind === "file-copy" && j.target.site === site);
  const sources = [...new Set(incoming.map((j) => j.site))].sort();
  const stored = jobs.filter((j): j is BackupJob => j.kind === "backup").map((job) => ({ job, store: storeOf(job, sites) }));
  const storeHosts = [...new Set(stored.filter((s) => s.store.site === site).flatMap((s) => s.store.hosts))].sort();
  const writers = [...new Set(stored.filter((s) => s.store.site === site).map((s) => s.job.site))].sort();
  const targetHosts = sources.length > 0 ? storage : [];
  const sshdHosts = [...new Set([...targetHosts, ...storeHosts])].sort();
  if (sshdHosts.length > 0) {
    const id = credentialIds.storageHostKey(site);
    put(sshdHosts, {
      ...secretFile(STORAGE_HOST_KEY, secretOf(id, site, STORAGE_HOST_KEY) ?? waitLine(site, id, "the key")),
      reload: ["systemctl", "reload", "ssh"],
    });
  }
  if (targetHosts.length > 0) {
    const lines = sources.map((source) => {
      const id = credentialIds.replicationSsh(source, site);
      const key = publicOf(id, source, `${REPLICATION_AUTHORIZED_KEYS} (${source})`);
      const from = siteByName(sites, source).supernet;
      return key
        ? `restrict,from="${from}",command="${REPLICA_RECEIVE_COMMAND}" ${key} ${source}-replication`
        : waitLine(source, id, `the key of ${source}`);
    });
    put(
      targetHosts,
      publicFile(
        REPLICATION_AUTHORIZED_KEYS,
        [HEADER, "# One key per source site: only from its supernet, only the receive command (sshd(8) AUTHORIZED_KEYS).", ...lines].join(
          "\n",
        ),
      ),
    );
  }
  if (storeHosts.length > 0) {
    const lines = writers.map((writer) => {
      const id = credentialIds.backupSsh(writer);
      const key = publicOf(id, writer, `${RESTIC_AUTHORIZED_KEYS} (${writer})`);
      const from = siteByName(sites, writer).supernet;
      return key
        ? `restrict,from="${from}",command="internal-sftp -d ${LOCAL_BACKUP_ROOT}" ${key} ${writer}-backup`
        : waitLine(writer, id, `the key of ${writer}`);
    });
    put(
      storeHosts,
      publicFile(
        RESTIC_AUTHORIZED_KEYS,
        [HEADER, "# One key per writing site: only from its supernet, only sftp (no shell, no forwarding).", ...lines].join("\n"),
      ),
    );
  }
  for (const host of sshdHosts) {
    const blocks = [
      HEADER,
      "# The storage pair's own host key first: replication and backups pin it for the VIP and both members.",
      `HostKey ${STORAGE_HOST_KEY}`,
      "# The image's own keys stay, listed because a HostKey line replaces the defaults.",
      "HostKey /etc/ssh/ssh_host_ed25519_key",
      "HostKey /etc/ssh/ssh_host_ecdsa_key",
      "HostKey /etc/ssh/ssh_host_rsa_key",
    ];
    if (targetHosts.includes(host)) {
      blocks.push(
        "# Root keeps its own authorized_keys (delivery logs in with it) and accepts the replication keys, each bound to",
        "# its source's supernet and the receive command.",
        "Match User root",
        `  AuthorizedKeysFile .ssh/authorized_keys ${REPLICATION_AUTHORIZED_KEYS}`,
      );
    }
    if (storeHosts.includes(host)) {
      blocks.push(
        "# restic may only speak sftp; its keys are the writing sites' backup keys.",
        "Match User restic",
        `  AuthorizedKeysFile ${RESTIC_AUTHORIZED_KEYS}`,
        `  ForceCommand internal-sftp -d ${LOCAL_BACKUP_ROOT}`,
        "  PasswordAuthentication no",
        "  DisableForwarding yes",
        "  PermitTTY no",
      );
    }
    put(
      [host],
      publicFile(STORAGE_SSHD_DROPIN, blocks.join("\n"), {
        check: { command: SSHD_DROPIN_CHECK },
        reload: ["systemctl", "reload", "ssh"],
        // The operators' and delivery's own sshd: it must still accept its whole configuration.
        healthCheck: ["sh", "-c", "/usr/sbin/sshd -t && systemctl is-active --quiet ssh"],
      }),
    );
  }

  // Backup writer.
  const backups = stored.filter((s) => s.job.site === site);
  if (backups.length > 0) {
    const keyId = credentialIds.backupSsh(site);
    const backupKey = secretOf(keyId, site, `${BACKUP_SECRETS_DIR}/id_ed25519`) ?? waitLine(site, keyId, "the key");
    const stores = [...new Map(backups.map((b) => [b.job.store.address, b.store.site])).entries()].sort(([a], [b]) => a.localeCompare(b));
    const storesKnown = [
      HEADER,
      "# Each backup store's data address with its storage pair's host key.",
      ...stores.map(([address, storeSite]) => {
        const id = credentialIds.storageHostKey(storeSite);
        const key = publicOf(id, storeSite, `${BACKUP_SECRETS_DIR}/known_hosts (${address})`);
        return key ? `${address} ${key}` : waitLine(storeSite, id, `the line of ${address}`);
      }),
    ].join("\n");
    const services = [...new Set(backups.map((b) => b.job.service))].sort();
    const databases = new Map<string, BackupJob["databases"][number] & { service: string }>();
    for (const { job } of backups)
      for (const db of job.databases) databases.set(`${job.service}/${db.name}`, { ...db, service: job.service });
    const dumpPassword = (service: string, db: string) =>
      secretOf(credentialIds.databaseBackup(service, db), site, `dump user of ${service}/${db}`) ?? "";
    const pgService = (dbs: Array<BackupJob["databases"][number] & { service: string }>) =>
      [
        HEADER,
        "# libpq connection services of the backup dumps (pg_dump --dbname=service=<endpoint>); passwords are in pgpass.",
        ...dbs
          .filter((d) => d.engine === "postgres")
          .flatMap((d) => [
            `[${d.endpoint}]`,
            `host=${d.endpoint}`,
            "port=5432",
            `dbname=${d.name}`,
            `user=${BACKUP_DUMP_USER}`,
            "sslmode=verify-full",
            `sslrootcert=${BACKUP_DATABASE_CA}`,
          ]),
      ].join("\n");
    const pgpass = (dbs: Array<BackupJob["databases"][number] & { service: string }>) =>
      [
        ...dbs
          .filter((d) => d.engine === "postgres")
          .map((d) => `${d.endpoint}:5432:${d.name}:${BACKUP_DUMP_USER}:${dumpPassword(d.service, d.name)}`),
      ].join("\n");
    const cnf = (d: BackupJob["databases"][number] & { service: string }) =>
      [
        HEADER,
        "[client]",
        `host=${d.endpoint}`,
        "port=3306",
        `user=${BACKUP_DUMP_USER}`,
        `password=${dumpPassword(d.service, d.name)}`,
        `ssl-ca=${BACKUP_DATABASE_CA}`,
        "ssl-verify-server-cert",
      ].join("\n");
    const all = [...databases.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint));
    // The dumps verify their endpoints (verify-full) against the site's own database CA.
    const caId = credentialIds.databaseTlsCa(site);
    const dumpCa =
      all.length === 0 ? undefined : (certificateOf(caId, site, BACKUP_DATABASE_CA) ?? waitLine(site, caId, "the certificate"));
    const mariadbNames = all.filter((d) => d.engine === "mariadb").map((d) => d.name);
    const clash = mariadbNames.find((n, i) => mariadbNames.indexOf(n) !== i);
    // jobs.ts names the option file by database only: two services' databases of one name would share it.
    if (clash && runner === "systemd") throw new Error(`credentials: ${site}: two services back up a mariadb database named ${clash}`);
    if (runner === "systemd") {
      put(storage, secretFile(`${BACKUP_SECRETS_DIR}/id_ed25519`, backupKey));
      put(storage, publicFile(`${BACKUP_SECRETS_DIR}/known_hosts`, storesKnown));
      put(
        storage,
        publicFile(
          BACKUP_SSH_CLIENT_DROPIN,
          [
            HEADER,
            "# restic's sftp backend runs `ssh restic@<store> -s sftp`: that login uses the backup key and pinned store keys.",
            "Match user restic",
            `  IdentityFile ${BACKUP_SECRETS_DIR}/id_ed25519`,
            "  IdentitiesOnly yes",
            `  UserKnownHostsFile ${BACKUP_SECRETS_DIR}/known_hosts`,
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
          ].join("\n"),
        ),
      );
      for (const { job } of backups) {
        const id = credentialIds.restic(job.service, job.store.host);
        put(storage, secretFile(resticPasswordFile(job), secretOf(id, site, resticPasswordFile(job)) ?? ""));
      }
      if (all.some((d) => d.engine === "postgres")) {
        put(storage, publicFile(`${BACKUP_SECRETS_DIR}/pg_service.conf`, pgService(all)));
        put(storage, secretFile(`${BACKUP_SECRETS_DIR}/pgpass`, pgpass(all)));
      }
      for (const d of all.filter((x) => x.engine === "mariadb")) put(storage, secretFile(`${BACKUP_SECRETS_DIR}/${d.name}.cnf`, cnf(d)));
      if (dumpCa !== undefined) put(storage, publicFile(BACKUP_DATABASE_CA, dumpCa));
    } else {
      for (const service of services) {
        const name = JOB_SECRETS.backup(service);
        const own = all.filter((d) => d.service === service);
        putSecret(name, "id_ed25519", backupKey);
        putSecret(name, "known_hosts", storesKnown);
        for (const { job } of backups.filter((b) => b.job.service === service)) {
          const id = credentialIds.restic(job.service, job.store.host);
          putSecret(name, resticPasswordSecretKey(job), secretOf(id, site, `${name}/${resticPasswordSecretKey(job)}`) ?? "");
        }
        if (own.some((d) => d.engine === "postgres")) {
          putSecret(name, "pg_service.conf", pgService(own));
          putSecret(name, "pgpass", pgpass(own));
        }
        for (const d of own.filter((x) => x.engine === "mariadb")) putSecret(name, `${d.name}.cnf`, cnf(d));
        if (dumpCa !== undefined && own.length > 0) putSecret(name, BACKUP_DATABASE_CA_SECRET_KEY, dumpCa);
      }
    }
    // The dump user, on the hosts that run the databases: created by statements the service deployment runs.
    const clients = dumpClientNetworks(model);
    for (const d of all) {
      const password = dumpPassword(d.service, d.name);
      const intro = [
        `-- ${HEADER.slice(2)}`,
        `-- ${d.service}/${d.name}: ${d.engine} ${d.endpoint}. The read-only user of the backup dumps (${runner === "systemd" ? "timers on the storage hosts" : "CronJobs"}),`,
        `-- from ${clients.join(", ")} only, TLS only.`,
      ];
      if (d.engine === "postgres") {
        put(
          virtualization,
          secretFile(
            backupUserSqlFile(d.service, d.name),
            [
              ...intro,
              "-- Run once as the superuser (psql -v ON_ERROR_STOP=1 -f); running it again changes nothing but the password.",
              "SET password_encryption = 'scram-sha-256';",
              `SELECT 'CREATE ROLE ${BACKUP_DUMP_USER} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${sqlLiteral(BACKUP_DUMP_USER)})`,
              "\\gexec",
              `ALTER ROLE ${BACKUP_DUMP_USER} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${sqlLiteral(password)};`,
              "-- Reads every table, view and sequence (PostgreSQL 14 or newer); writes nothing.",
              `GRANT pg_read_all_data TO ${BACKUP_DUMP_USER};`,
            ].join("\n"),
          ),
        );
        put(
          virtualization,
          publicFile(
            backupUserHbaFile(d.service, d.name),
            [
              HEADER,
              `# ${d.service}/${d.name}: the backup dumps' user, only from where the dumps run, only over TLS.`,
              ...clients.map((c) => `hostssl ${d.name} ${BACKUP_DUMP_USER} ${c} scram-sha-256`),
            ].join("\n"),
          ),
        );
      } else {
        const accounts = clients.map((c) => `${sqlLiteral(BACKUP_DUMP_USER)}@${sqlLiteral(mariadbHost(c))}`);
        put(
          virtualization,
          secretFile(
            backupUserSqlFile(d.service, d.name),
            [
              ...intro,
              "-- Run once as root (mariadb < file); running it again changes nothing but the password.",
              ...accounts.flatMap((account) => [
                `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ${sqlLiteral(password)} REQUIRE SSL;`,
                `ALTER USER ${account} IDENTIFIED BY ${sqlLiteral(password)} REQUIRE SSL;`,
                `GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON ${sqlIdentifier(d.name)}.* TO ${account};`,
                "-- mariadb-dump --routines reads the routines' definitions there.",
                `GRANT SELECT ON mysql.proc TO ${account};`,
              ]),
            ].join("\n"),
          ),
        );
      }
    }
  }

  // Database TLS: every virtualization host presents its own key and certificate (all the site's endpoints) and
  // trusts its own site's CA and the CA of every site it replicates with (the peer servers it connects to).
  const endpoints = databaseEndpointsAt(site, jobs);
  if (endpoints.length > 0) {
    for (const host of virtualization) {
      const id = credentialIds.databaseTlsServer(host);
      put([host], secretFile(DATABASE_TLS.key, secretOf(id, site, `${DATABASE_TLS.key} (${host})`) ?? waitLine(site, id, "the key")));
      put(
        [host],
        publicFile(DATABASE_TLS.cert, certificateOf(id, site, `${DATABASE_TLS.cert} (${host})`) ?? waitLine(site, id, "the certificate")),
      );
    }
    const trusted = [site, ...databasePeersOf(site, jobs)];
    const bundle = [
      HEADER,
      `# The database CAs ${site}'s servers and replicas trust: its own and those of the sites it replicates with.`,
      ...trusted.flatMap((from) => {
        const id = credentialIds.databaseTlsCa(from);
        const pem = certificateOf(id, from, `${DATABASE_TLS.ca} (${from})`);
        return [`# ${from}${from === site ? " (own)" : ""}`, pem ?? waitLine(from, id, `the CA of ${from}`)];
      }),
    ].join("\n");
    put(virtualization, publicFile(DATABASE_TLS.ca, bundle));
  }

  // Database replication: both ends' virtualization hosts.
  const replications = jobs.filter((j): j is DatabaseReplicationJob => j.kind === "database-replication" && j.site === site);
  const pgpassLines: string[] = [];
  for (const job of replications) {
    const { from, to } = databasePath(job);
    const id = credentialIds.databaseReplication(job.service, job.database, from, to);
    const sqlPath = `${DATABASE_SECRETS_DIR}/${job.key}.sql`;
    const password = secretOf(id, from, sqlPath);
    // The statements that need the password (the source's user, a MariaDB replica's connection): rendered by the
    // database files' own renderer; while the peer has not published the password, a comment that waits.
    const sql = password === undefined ? undefined : renderDatabaseFiles(job, password).find((f) => f.secret);
    if (sql) put(virtualization, sql);
    else if (job.side === "source" || job.engine === "mariadb")
      put(virtualization, secretFile(sqlPath, [`-- ${HEADER.slice(2)}`, `-- ${waitLine(from, id, "the statements").slice(2)}`].join("\n")));
    if (job.side === "replica" && job.engine === "postgres") {
      pgpassLines.push(
        password === undefined
          ? waitLine(from, id, `the line of ${job.peer.endpoint}`)
          : `${job.peer.endpoint}:5432:replication:${REPLICATION_USER}:${password}`,
      );
    }
  }
  if (pgpassLines.length > 0) put(virtualization, secretFile(REPLICATION_PGPASS, pgpassLines.join("\n")));

  return {
    hostFiles: Object.fromEntries(
      [...files.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([host, list]) => [host, [...list].sort((a, b) => a.path.localeCompare(b.path))]),
    ),
    kubernetesSecrets: secrets,
    waiting: [...new Set(waiting)].sort(),
  };
}

// ---------------------------------------------------------------------------
// Derived TLS (tests, the twin and the mock runtime): ECDSA P-256 keys from a seed and X.509 v3 certificates
// written with a small DER encoder (RFC 5280 §4.1, RFC 5480, RFC 5758 §3.2). Signatures use a nonce derived
// from the key and the message (in the spirit of RFC 6979, HMAC-SHA-256), so the same input gives the same
// bytes. Node's crypto does the curve arithmetic (ECDH computes k·G). Derived values are public knowledge
// and never deployed: a real stack gets its keys and certificates from `@pulumi/tls`.

const P256_ORDER = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const toBig = (b: Buffer) => BigInt(`0x${b.toString("hex") || "0"}`);
const to32 = (n: bigint) => Buffer.from(n.toString(16).padStart(64, "0"), "hex");
const modPow = (base: bigint, exp: bigint, mod: bigint): bigint => {
  let result = 1n;
  let b = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % mod;
    b = (b * b) % mod;
  }
  return result;
};

/** k·G on P-256: the uncompressed point (0x04 ‖ x ‖ y). */
function p256Multiply(k: bigint): Buffer {
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(to32(k));
  return ecdh.getPublicKey();
}

function p256Key(d: bigint): KeyObject {
  const point = p256Multiply(d);
  return createPrivateKey({
    key: {
      kty: "EC",
      crv: "P-256",
      d: to32(d).toString("base64url"),
      x: point.subarray(1, 33).toString("base64url"),
      y: point.subarray(33, 65).toString("base64url"),
    },
    format: "jwk",
  });
}

/** An ECDSA P-256 key derived from `seed`, in the PEM formats `tls.PrivateKey` reports (SEC 1 and SPKI). */
export function derivedEcdsaKey(seed: string): { privateKeyPem: string; publicKeyPem: string } {
  const d = (toBig(createHash("sha256").update(`ecdsa-p256:${seed}`).digest()) % (P256_ORDER - 1n)) + 1n;
  const key = p256Key(d);
  return {
    privateKeyPem: key.export({ type: "sec1", format: "pem" }).toString(),
    publicKeyPem: createPublicKey(key).export({ type: "spki", format: "pem" }).toString(),
  };
}

/** ECDSA-SHA256 with a nonce derived from the key and the message: the DER `Ecdsa-Sig-Value`. */
function signDeterministic(privateKeyPem: string, message: Buffer): Buffer {
  const jwk = createPrivateKey(privateKeyPem).export({ format: "jwk" });
  if (jwk.crv !== "P-256" || !jwk.d) throw new Error("derived certificates: the signing key is not an ECDSA P-256 key");
  const d = toBig(Buffer.from(jwk.d, "base64url"));
  const hash = createHash("sha256").update(message).digest();
  const z = toBig(hash) % P256_ORDER;
  for (let counter = 0; ; counter++) {
    const k = toBig(createHmac("sha256", to32(d)).update(hash).update(String(counter)).digest()) % P256_ORDER;
    if (k === 0n) continue;
    const r = toBig(p256Multiply(k).subarray(1, 33)) % P256_ORDER;
    if (r === 0n) continue;
    const s = (modPow(k, P256_ORDER - 2n, P256_ORDER) * ((z + r * d) % P256_ORDER)) % P256_ORDER;
    if (s === 0n) continue;
    return asn1.seq(asn1.int(to32(r)), asn1.int(to32(s)));
  }
}

/** The few DER encodings an X.509 certificate needs (X.690). */
const asn1 = {
  tlv(tag: number, ...parts: Buffer[]): Buffer {
    const body = Buffer.concat(parts);
    let length: Buffer;
    if (body.length < 0x80) length = Buffer.from([body.length]);
    else {
      const bytes = Buffer.from(body.length.toString(16).padStart(body.length > 0xff ? 4 : 2, "0"), "hex");
      length = Buffer.concat([Buffer.from([0x80 | bytes.length]), bytes]);
    }
    return Buffer.concat([Buffer.from([tag]), length, body]);
  },
  seq: (...parts: Buffer[]) => asn1.tlv(0x30, ...parts),
  set: (...parts: Buffer[]) => asn1.tlv(0x31, ...parts),
  int(bytes: Buffer): Buffer {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const trimmed = bytes.subarray(i);
    return asn1.tlv(0x02, trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
  },
  oid(dotted: string): Buffer {
    const [a, b, ...rest] = dotted.split(".").map(Number);
    const bytes = [40 * a + b];
    for (const n of rest) {
      const groups = [n & 0x7f];
      for (let v = n >>> 7; v > 0; v >>>= 7) groups.unshift(0x80 | (v & 0x7f));
      bytes.push(...groups);
    }
    return asn1.tlv(0x06, Buffer.from(bytes));
  },
  utf8: (text: string) => asn1.tlv(0x0c, Buffer.from(text, "utf8")),
  bool: (value: boolean) => asn1.tlv(0x01, Buffer.from([value ? 0xff : 0])),
  octets: (bytes: Buffer) => asn1.tlv(0x04, bytes),
  bits: (bytes: Buffer, unused = 0) => asn1.tlv(0x03, Buffer.from([unused]), bytes),
  /** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
  time(date: Date): Buffer {
    const text = date.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
    return date.getUTCFullYear() < 2050 ? asn1.tlv(0x17, Buffer.from(text.slice(2))) : asn1.tlv(0x18, Buffer.from(text));
  },
};

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  organization: "2.5.4.10",
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** Fixed validity of derived certificates: the same bytes on every run. */
const DERIVED_NOT_BEFORE = new Date("2025-01-01T00:00:00Z");
const DERIVED_NOT_AFTER = new Date("2049-12-31T23:59:59Z");

function derName(commonName: string): Buffer {
  return asn1.seq(
    asn1.set(asn1.seq(asn1.oid(OID.organization), asn1.utf8("standort"))),
    asn1.set(asn1.seq(asn1.oid(OID.commonName), asn1.utf8(commonName))),
  );
}

function spkiOf(pem: string): { der: Buffer; keyId: Buffer } {
  const der = createPublicKey(pem).export({ type: "spki", format: "der" });
  // RFC 5280 §4.2.1.2 (1): SHA-1 of the subjectPublicKey bits; for P-256 the last 65 bytes of the SPKI.
  return {
    der,
    keyId: createHash("sha1")
      .update(der.subarray(der.length - 65))
      .digest(),
  };
}

function commonNameOf(certPem: string): string {
  const subject = new X509Certificate(certPem).subject;
  return /^CN=(.*)$/m.exec(subject)?.[1] ?? "";
}

/**
 * A derived X.509 v3 certificate (PEM), ECDSA-SHA256: self-signed when
 * `issuer` is absent. A CA gets basicConstraints CA:TRUE and keyCertSign/
 * cRLSign; a server gets digitalSignature, serverAuth and its DNS names.
 * Deterministic: the same arguments give the same bytes.
 */
export function derivedCertificate(args: {
  /** The subject's public (or private) key, PEM. */
  readonly subjectKeyPem: string;
  readonly commonName: string;
  readonly dnsNames?: ReadonlyArray<string>;
  readonly ca: boolean;
  /** The issuing CA's private key and certificate; absent for a self-signed certificate (then `subjectKeyPem` is the private key). */
  readonly issuer?: { readonly privateKeyPem: string; readonly certPem: string };
}): string {
  const subject = spkiOf(args.subjectKeyPem);
  const issuerKeyPem = args.issuer?.privateKeyPem ?? args.subjectKeyPem;
  const issuerKeyId = args.issuer ? spkiOf(args.issuer.privateKeyPem).keyId : subject.keyId;
  const issuerName = derName(args.issuer ? commonNameOf(args.issuer.certPem) : args.commonName);
  const algorithm = asn1.seq(asn1.oid(OID.ecdsaWithSha256));
  const extension = (oid: string, critical: boolean, value: Buffer) =>
    asn1.seq(asn1.oid(oid), ...(critical ? [asn1.bool(true)] : []), asn1.octets(value));
  const extensions = [
    extension(OID.basicConstraints, true, args.ca ? asn1.seq(asn1.bool(true)) : asn1.seq()),
    // keyCertSign (5) and cRLSign (6): 0b0000_0110, one unused bit; digitalSignature (0): 0b1000_0000, seven unused.
    extension(OID.keyUsage, true, args.ca ? asn1.bits(Buffer.from([0x06]), 1) : asn1.bits(Buffer.from([0x80]), 7)),
    extension(OID.subjectKeyIdentifier, false, asn1.octets(subject.keyId)),
    extension(OID.authorityKeyIdentifier, false, asn1.seq(asn1.tlv(0x80, issuerKeyId))),
    ...(args.ca ? [] : [extension(OID.extKeyUsage, false, asn1.seq(asn1.oid(OID.serverAuth)))]),
    ...(args.dnsNames && args.dnsNames.length > 0
      ? [extension(OID.subjectAltName, false, asn1.seq(...args.dnsNames.map((n) => asn1.tlv(0x82, Buffer.from(n, "ascii")))))]
      : []),
  ];
  const serial = createHash("sha256")
    .update(`serial:${args.commonName}:${subject.der.toString("base64")}`)
    .digest()
    .subarray(0, 16);
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  const tbs = asn1.seq(
    asn1.tlv(0xa0, asn1.int(Buffer.from([2]))),
    asn1.int(serial),
    algorithm,
    issuerName,
    asn1.seq(asn1.time(DERIVED_NOT_BEFORE), asn1.time(DERIVED_NOT_AFTER)),
    derName(args.commonName),
    subject.der,
    asn1.tlv(0xa3, asn1.seq(...extensions)),
  );
  const der = asn1.seq(tbs, algorithm, asn1.bits(signDeterministic(issuerKeyPem, tbs)));
  const base64 = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`;
}
