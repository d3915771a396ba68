// The job credentials: who generates each, which hosts and Secrets receive it, and that no value shows in clear.
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { loadFootprint } from "../lib/footprint/load";
import { JOB_SECRETS, planJobs } from "../lib/footprint/jobs";
import {
  Credential,
  PeerCredentials,
  STORAGE_SSHD_DROPIN,
  credentialIds,
  credentialPeers,
  derivedCredentialValues,
  generatedBy,
  parsePeerCredentials,
  placeholderCredentialValues,
  planCredentials,
  renderCredentialFiles,
} from "../lib/footprint/credentials";
import { SiteModel } from "../lib/model/model";
import { ReplicationCredentials } from "../components/replication-credentials";
import { MockRunResult, mockText, runUnderMocks } from "../lib/preview/harness";
import { planStack } from "../lib/preview/run-stack";
import { planHostFiles } from "../lib/preview/files";
import { ed25519KeyFromSeed } from "../lib/render/sshkey";
import { FILE_PLACEHOLDER } from "../lib/render/types";
import { requireTool, run } from "./helpers/tools";

const { footprint, sites } = loadFootprint();
const jobs = planJobs(footprint, sites);
const credentials = planCredentials(sites, jobs);
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const roleOf = (host: string) => sites.flatMap((s) => s.hosts).find((h) => h.name === host)!.role;

/** A plain file as the component delivers it, resolved inside the mock run. */
interface ResolvedFile {
  readonly host: string;
  readonly path: string;
  readonly mode: string;
  readonly secret: boolean;
  readonly contentIsSecret: boolean;
  readonly content: string;
}

/**
 * The value of an Output, or UNKNOWN when it is unknown (as at preview: the mock runtime computes no
 * certificates yet, so whatever needs a generated certificate stays unknown, as in a first `pulumi preview`).
 */
const UNKNOWN = "(unknown at preview)";
const resolve = async <T>(value: pulumi.Input<T>): Promise<T> => {
  const output = pulumi.output(value);
  const known = await (output as unknown as { isKnown: Promise<boolean> }).isKnown;
  if (!known) return UNKNOWN as T;
  return new Promise((r) => output.apply((v) => r(v as T)));
};

interface Captured {
  readonly files: ResolvedFile[];
  readonly secrets: Record<string, Record<string, string>>;
  readonly secretNames: ReadonlyArray<string>;
  readonly published: PeerCredentials;
  readonly publishedSecretIsSecret: boolean;
  readonly waiting: string[];
  readonly replicationPasswords: Record<string, string | undefined>;
  readonly replicationPasswordsAreSecret: boolean;
}

/** Runs one site's ReplicationCredentials under the mock runtime with the given peer outputs and resolves what it delivers. */
async function credentialsOf(name: string, peers: Record<string, unknown>): Promise<{ run: MockRunResult; captured: Captured }> {
  let captured: Captured | undefined;
  const run = await runUnderMocks({
    stack: name,
    program: async () => {
      const c = new ReplicationCredentials(`${name}-credentials`, { model: site(name), sites, jobs, peers });
      const files: ResolvedFile[] = [];
      for (const [host, list] of Object.entries(c.files)) {
        for (const f of list) {
          const content = pulumi.output(f.content);
          files.push({
            host,
            path: f.path,
            mode: f.mode,
            secret: f.secret,
            contentIsSecret: await pulumi.isSecret(content),
            content: await resolve(content),
          });
        }
      }
      captured = {
        files,
        secrets: await resolve(c.kubernetesSecrets),
        secretNames: c.secretNames,
        published: {
          publicKeys: await resolve(c.publicKeys),
          secrets: await resolve(c.publishedSecrets),
          // Unknown while the CA is not issued (the mock runtime issues none): published as nothing, like a peer not run.
          certificates: await resolve(c.publishedCertificates).then((v) => (typeof v === "string" ? {} : v)),
        },
        publishedSecretIsSecret: await pulumi.isSecret(c.publishedSecrets),
        waiting: await resolve(c.waiting),
        replicationPasswords: await resolve(c.replicationPasswords),
        replicationPasswordsAreSecret: await pulumi.isSecret(c.replicationPasswords),
      };
      // Without the certificates: the harness resolves exported outputs, and theirs stay unknown under its mocks.
      return { credentials: { publicKeys: c.publicKeys, secrets: c.publishedSecrets } };
    },
  });
  return { run, captured: captured! };
}

/** The `ssh-ed25519 <base64>` line of an OpenSSH private key, computed independently by Node's crypto. */
function ed25519PublicOf(privateKeyOpenssh: string): string {
  const body = Buffer.from(privateKeyOpenssh.split("\n").slice(1, -2).join(""), "base64");
  // openssh-key-v1: magic, cipher, kdf, kdf options, key count, then the public key blob as an SSH string.
  let at = "openssh-key-v1\0".length;
  const next = () => {
    const length = body.readUInt32BE(at);
    const value = body.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    return value;
  };
  next();
  next();
  next();
  at += 4;
  return `ssh-ed25519 ${next().toString("base64")}`;
}

/** path → sorted host names that receive it. */
function receivers(files: ReadonlyArray<ResolvedFile>): Record<string, string[]> {
  const by: Record<string, string[]> = {};
  for (const f of files) (by[f.path] ??= []).push(f.host);
  for (const list of Object.values(by)) list.sort();
  return by;
}

/** The mock runtime's value of every credential a site generates: what must never appear in clear. */
function mockValues(owner: string, c: ReadonlyArray<Credential>): string[] {
  return generatedBy(c, owner).flatMap((x) =>
    x.generator === "random.RandomPassword"
      ? [mockText(`${owner}-credentials-${x.id}`, 32)]
      : [ed25519KeyFromSeed(`mock:${owner}-credentials-${x.id}`).privateKeyOpenssh.split("\n")[2]],
  );
}

test("every credential has one generating stack; readers are the sites whose hosts need it", () => {
  const byId = new Map(credentials.map((c) => [c.id, c]));
  // Replication key: generated by the source, its public key read by the target only.
  assert.deepEqual(byId.get(credentialIds.replicationSsh("helsinki", "vienna")), {
    id: "replication-ssh-helsinki-to-vienna",
    kind: "replication-ssh-key",
    generator: "tls.PrivateKey",
    site: "helsinki",
    readers: ["vienna"],
    publish: "public-key",
    description: "rsync over ssh from helsinki's storage to vienna's storage VIP (forced receive command)",
  });
  // The storage pair's host key: read by every source that copies to it and every writer storing there.
  assert.deepEqual(byId.get(credentialIds.storageHostKey("vienna"))?.readers, ["helsinki", "karlsruhe"]);
  // A database replication password is the only secret a peer reads, and only the replica's site reads it.
  assert.deepEqual(
    credentials.filter((c) => c.publish === "secret").map((c) => [c.id, c.site, c.readers.join(",")]),
    jobs
      .filter((j) => j.kind === "database-replication" && j.side === "source")
      .map(
        (j) =>
          j.kind === "database-replication" && [
            `db-replication-${j.service}-${j.database}-${j.site}-to-${j.peer.site}`,
            j.site,
            j.peer.site,
          ],
      )
      .sort((a, b) => String(a && a[0]).localeCompare(String(b && b[0]))),
  );
  // Restic and dump passwords never leave the writer's stack.
  for (const c of credentials.filter((x) => x.kind === "restic-password" || x.kind === "database-backup-password")) {
    assert.deepEqual([c.publish, c.readers], ["none", []], c.id);
  }
  assert.deepEqual(credentialPeers(credentials, "vienna"), ["helsinki", "karlsruhe"]);
  assert.deepEqual(credentialPeers(credentials, "frankfurt"), ["helsinki"]);
});

test("a compose site (vienna): each credential lands on exactly the hosts of the role that uses it", async () => {
  const { captured } = await credentialsOf("vienna", { helsinki: undefined, karlsruhe: undefined });
  const to = receivers(captured.files);
  const storage = ["vie-stor-1", "vie-stor-2"];
  const virtualization = site("vienna")
    .hosts.filter((h) => h.role === "virtualization")
    .map((h) => h.name);
  // Nothing reaches a firewall or a proxy.
  assert.deepEqual([...new Set(captured.files.map((f) => roleOf(f.host)))].sort(), ["storage", "virtualization"]);
  const expectStorage = [
    "/etc/ssh/ssh_config.d/standort-backup.conf",
    "/etc/ssh/sshd_config.d/standort-storage.conf",
    "/etc/standort/backup/database-ca.crt",
    "/etc/standort/backup/id_ed25519",
    "/etc/standort/backup/known_hosts",
    "/etc/standort/backup/mail.fkb-storage.password",
    "/etc/standort/backup/mail.vie-stor-1.password",
    "/etc/standort/backup/mail.vie-stor-2.password",
    "/etc/standort/backup/postfixadmin.cnf",
    "/etc/standort/replication/authorized_keys",
    "/etc/standort/replication/id_ed25519",
    "/etc/standort/replication/known_hosts",
    "/etc/standort/sshd/restic_authorized_keys",
    "/etc/standort/sshd/ssh_host_ed25519_key",
  ];
  const expectVirtualization = [
    "/etc/standort/databases/mail-db-postfixadmin-to-karlsruhe.sql",
    "/etc/standort/databases/mail-postfixadmin.backup.sql",
    "/etc/standort/databases/pgpass",
    "/etc/standort/databases/tls/ca.crt",
    "/etc/standort/databases/tls/server.crt",
    "/etc/standort/databases/tls/server.key",
  ];
  assert.deepEqual(
    to,
    Object.fromEntries([...expectStorage.map((p) => [p, storage]), ...expectVirtualization.map((p) => [p, virtualization])]),
  );
  // A compose site mounts no Secrets: its timers read the files.
  assert.deepEqual(captured.secretNames, []);
  for (const f of captured.files) {
    const secretPath = /id_ed25519$|ssh_host_ed25519_key$|\.password$|\.cnf$|pgpass$|\.sql$|\.key$/.test(f.path);
    assert.equal(f.secret, secretPath, `${f.host}: ${f.path} secret flag`);
    assert.equal(f.mode, secretPath ? "0600" : "0644", `${f.host}: ${f.path} mode`);
    assert.equal(f.contentIsSecret, f.secret, `${f.host}: ${f.path} content is a secret Output exactly when the file is secret`);
  }
  const file = (path: string) => captured.files.find((f) => f.host === "vie-stor-1" && f.path === path)!.content;
  assert.match(file("/etc/standort/replication/id_ed25519"), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  assert.match(file("/etc/standort/backup/mail.vie-stor-1.password"), /^[A-Za-z0-9]{32}\n$/);
  // The two local repositories and the off-site one have three different passwords.
  const passwords = ["vie-stor-1", "vie-stor-2", "fkb-storage"].map((s) => file(`/etc/standort/backup/mail.${s}.password`));
  assert.equal(new Set(passwords).size, 3);
  // Own stores' keys are known at once: vienna generated them.
  const ownHostKey = captured.published.publicKeys[credentialIds.storageHostKey("vienna")];
  assert.ok(file("/etc/standort/backup/known_hosts").includes(`10.30.1.20 ${ownHostKey}`));
  assert.ok(
    file("/etc/standort/sshd/restic_authorized_keys").includes(`${captured.published.publicKeys["backup-ssh-vienna"]} vienna-backup`),
  );
});

test("the peer pattern: files wait with a comment until the peer's stack has published, then carry its values", async () => {
  const karlsruhe = await credentialsOf("karlsruhe", { vienna: undefined });
  const helsinki = await credentialsOf("helsinki", { frankfurt: undefined, vienna: undefined });
  // The published secrets are a secret Output; public keys are plain.
  assert.equal(karlsruhe.captured.publishedSecretIsSecret, true);
  assert.deepEqual(Object.keys(karlsruhe.captured.published.secrets).sort(), [
    "db-replication-tickets-tickets-karlsruhe-to-vienna",
    "db-replication-tickets-wiki-karlsruhe-to-vienna",
  ]);

  const alone = await credentialsOf("vienna", { helsinki: undefined, karlsruhe: undefined });
  const read = (c: Captured, path: string) => c.files.find((f) => f.host === "vie-stor-1" && f.path === path)?.content ?? "";
  const readVirt = (c: Captured, path: string) => c.files.find((f) => f.host === "vie-virt-1" && f.path === path)?.content ?? "";
  assert.match(
    read(alone.captured, "/etc/standort/replication/authorized_keys"),
    /^# Waiting for karlsruhe: its stack has not published replication-ssh-karlsruhe-to-vienna yet/m,
  );
  assert.match(read(alone.captured, "/etc/standort/replication/known_hosts"), /^# Waiting for karlsruhe: .*storage-host-key-karlsruhe/m);
  assert.match(
    readVirt(alone.captured, "/etc/standort/databases/pgpass"),
    /^# Waiting for karlsruhe: .*db-replication-tickets-tickets-karlsruhe-to-vienna/m,
  );
  assert.ok(alone.captured.waiting.some((w) => w.includes("db-replication-tickets-tickets-karlsruhe-to-vienna")));

  // karlsruhe has run, helsinki has not: karlsruhe's lines appear, helsinki's still wait.
  const half = await credentialsOf("vienna", { helsinki: undefined, karlsruhe: karlsruhe.captured.published });
  const keys = read(half.captured, "/etc/standort/replication/authorized_keys");
  assert.ok(
    keys.includes(
      `restrict,from="${site("karlsruhe").supernet}",command="/usr/local/sbin/standort-replica-receive" ${karlsruhe.captured.published.publicKeys["replication-ssh-karlsruhe-to-vienna"]} karlsruhe-replication`,
    ),
  );
  assert.match(keys, /^# Waiting for helsinki/m);
  const password = karlsruhe.captured.published.secrets["db-replication-tickets-tickets-karlsruhe-to-vienna"];
  assert.ok(
    readVirt(half.captured, "/etc/standort/databases/pgpass").includes(
      `tickets.tickets.db.fkb.standort.internal:5432:replication:replicator:${password}\n`,
    ),
  );
  // The per-job passwords for renderers that take them: the replica's from karlsruhe, helsinki's still absent.
  assert.equal(half.captured.replicationPasswordsAreSecret, true);
  assert.equal(half.captured.replicationPasswords["tickets-db-tickets-from-karlsruhe"], password);
  assert.equal(half.captured.replicationPasswords["git-db-forge-from-helsinki"], undefined);
  assert.match(half.captured.replicationPasswords["mail-db-postfixadmin-to-karlsruhe"] ?? "", /^[A-Za-z0-9]{32}$/);
  // The source end holds the same password it created the user with.
  const source = karlsruhe.captured.files.find((f) => f.host === "fkb-virt-1" && f.path.endsWith("tickets-db-tickets-to-vienna.sql"))!;
  assert.ok(source.content.includes(`PASSWORD '${password}';\n`));

  const both = await credentialsOf("vienna", { helsinki: helsinki.captured.published, karlsruhe: karlsruhe.captured.published });
  // The mock runtime issues no certificates yet, so the peers' database CAs are all that may still wait.
  assert.deepEqual(
    both.captured.waiting.filter((w) => !/ waits for \w+'s stack to publish the certificate db-tls-ca-(helsinki|karlsruhe)$/.test(w)),
    [],
  );
  assert.doesNotMatch(JSON.stringify(both.captured.files.map((f) => f.content)), /Waiting for/);
  // The set of files never depends on what has been published.
  assert.deepEqual(
    both.captured.files.map((f) => `${f.host}:${f.path}`),
    alone.captured.files.map((f) => `${f.host}:${f.path}`),
  );
});

test("a Kubernetes site (helsinki): the backup CronJobs' Secrets carry the backup keys; the storage hosts the replication keys", async () => {
  const { captured: run } = await credentialsOf("helsinki", { frankfurt: undefined, vienna: undefined });
  // The backup Secrets carry the site's database CA, which the mock runtime does not issue: their data is unknown
  // there (as at a first preview), so the contents come from the pure render with working values.
  assert.ok(run.secrets === (UNKNOWN as unknown) || typeof run.secrets === "object");
  const derived = renderCredentialFiles(site("helsinki"), sites, jobs, derivedCredentialValues(credentials, "test"));
  const captured = { ...run, secrets: derived.kubernetesSecrets as Record<string, Record<string, string>> };
  // No replication Secret: the copies run on the storage hosts, which hold their keys.
  assert.deepEqual(captured.secretNames, [JOB_SECRETS.backup("git"), JOB_SECRETS.backup("webhosting")]);
  assert.deepEqual(Object.keys(captured.secrets[JOB_SECRETS.backup("git")]).sort(), [
    "database-ca.crt",
    "id_ed25519",
    "known_hosts",
    "pg_service.conf",
    "pgpass",
    "restic.fra-storage.password",
    "restic.hel-stor-1.password",
    "restic.hel-stor-2.password",
  ]);
  assert.ok(JOB_SECRETS.backup("webhosting") in captured.secrets && "sites.cnf" in captured.secrets[JOB_SECRETS.backup("webhosting")]);
  // The replication keys (one per path: the partner's and the migration target's differ) and the targets' pinned host
  // keys are on both storage hosts, where the copies run; the backup key stays in the cluster.
  const to = receivers(captured.files);
  for (const [path, hosts] of Object.entries(to)) {
    const roles = [...new Set(hosts.map(roleOf))];
    if (path.startsWith("/etc/standort/databases/")) assert.deepEqual(roles, ["virtualization"], path);
    else assert.deepEqual([roles, hosts], [["storage"], ["hel-stor-1", "hel-stor-2"]], path);
  }
  assert.deepEqual(
    Object.keys(to).filter((p) => /\/(replication|backup)\/(id_ed25519|known_hosts)/.test(p)),
    ["/etc/standort/replication/id_ed25519", "/etc/standort/replication/id_ed25519-vienna", "/etc/standort/replication/known_hosts"],
  );
  const onStorage = (path: string) => derived.hostFiles["hel-stor-1"].find((f) => f.path === path)!;
  assert.equal(onStorage("/etc/standort/replication/id_ed25519").secret, true);
  assert.equal(onStorage("/etc/standort/replication/id_ed25519-vienna").secret, true);
  assert.notEqual(
    onStorage("/etc/standort/replication/id_ed25519").content,
    onStorage("/etc/standort/replication/id_ed25519-vienna").content,
  );
  // frankfurt's and vienna's storage VIPs, each with its pair's host key.
  assert.match(onStorage("/etc/standort/replication/known_hosts").content, /^10\.10\.1\.5 ssh-ed25519 /m);
  assert.match(onStorage("/etc/standort/replication/known_hosts").content, /^10\.30\.1\.5 ssh-ed25519 /m);
  assert.ok("/etc/standort/replication/authorized_keys" in to, "frankfurt copies groupware into helsinki");
  assert.ok("/etc/standort/sshd/restic_authorized_keys" in to, "helsinki's and frankfurt's backups land here");
});

test("no generated value appears in clear in the plan's resources or outputs", async () => {
  for (const stack of ["vienna", "helsinki"]) {
    const run = await planStack(stack);
    const text = JSON.stringify(run);
    const values = mockValues(stack, credentials);
    assert.ok(values.length >= 5, `${stack} generates credentials`);
    for (const value of values) assert.ok(!text.includes(value), `${stack}: a generated value shows in the plan`);
    assert.ok(!text.includes("OPENSSH PRIVATE KEY"), `${stack}: no private key shows`);
    assert.equal(run.outputs.credentials, "[secret]", `${stack}: the published credentials are a secret output`);
    // The Kubernetes Secrets' data is secret; the host transactions' bundles too.
    for (const r of run.resources.filter((x) => x.type === "kubernetes:core/v1:Secret")) assert.equal(r.inputs.stringData, "[secret]");
    for (const r of run.resources.filter((x) => x.type === "command:remote:Command" && x.name.endsWith("-tx"))) {
      assert.equal(r.inputs.stdin, "[secret]", r.name);
    }
  }
  const helsinki = await planStack("helsinki");
  assert.deepEqual(
    helsinki.resources.filter((r) => r.type === "kubernetes:core/v1:Secret").map((r) => (r.inputs.metadata as { name: string }).name),
    // The backups' credentials, and each service's own secrets for its containers (standort:serviceSecrets).
    [JOB_SECRETS.backup("git"), JOB_SECRETS.backup("webhosting"), "git-secrets", "groupware-secrets", "webhosting-secrets"],
  );
});

test("the offline plan's files name the secret each placeholder stands for", () => {
  const placeholders = placeholderCredentialValues(credentials);
  const rendered = renderCredentialFiles(site("karlsruhe"), sites, jobs, placeholders);
  assert.deepEqual(rendered.waiting, []);
  const files = planHostFiles(site("karlsruhe"), sites, footprint).flatMap((h) => h.files.map((f) => ({ host: h.host, ...f })));
  const key = files.find((f) => f.host === "fkb-stor-1" && f.path === "/etc/standort/replication/id_ed25519")!;
  assert.deepEqual(
    [key.content, key.mode, key.secret],
    ["(secret: standort:credentials.replication-ssh-karlsruhe-to-vienna)\n", "0600", true],
  );
  for (const f of files.filter((x) => x.secret && /^\/etc\/standort\/(replication|backup|sshd|databases)\//.test(x.path))) {
    assert.match(f.content, /\(secret: standort:credentials\.[a-z0-9-]+\)/, `${f.host}: ${f.path}`);
  }
});

test("a peer's published credentials are validated; a malformed one is refused without showing values", () => {
  assert.deepEqual(parsePeerCredentials("karlsruhe", undefined), { publicKeys: {}, secrets: {}, certificates: {} });
  const key = ed25519KeyFromSeed("x").publicKeyOpenssh.trim();
  assert.deepEqual(parsePeerCredentials("karlsruhe", { publicKeys: { a: key } }), {
    publicKeys: { a: key },
    secrets: {},
    certificates: {},
  });
  const ca = derivedCredentialValues(credentials, "test").certificates["db-tls-ca-karlsruhe"]!;
  assert.deepEqual(parsePeerCredentials("karlsruhe", { certificates: { "db-tls-ca-karlsruhe": ca } }).certificates, {
    "db-tls-ca-karlsruhe": ca,
  });
  assert.throws(
    () => parsePeerCredentials("karlsruhe", { certificates: { "db-tls-ca-karlsruhe": `${ca}-----BEGIN PRIVATE KEY-----\nAAAA\n` } }),
    /^Error: stack output credentials of karlsruhe: certificates\.db-tls-ca-karlsruhe: one PEM certificate$/,
  );
  assert.throws(
    () => parsePeerCredentials("karlsruhe", { publicKeys: { a: "ssh-rsa AAAA" }, secrets: { b: "short pw!" } }),
    (error: Error) => {
      assert.match(
        error.message,
        /^stack output credentials of karlsruhe: publicKeys\.a: an ssh-ed25519 public key; secrets\.b: a generated password/,
      );
      assert.ok(!error.message.includes("short pw!"));
      return true;
    },
  );
});

test("sshd accepts the storage drop-in (its own check), and it changes root's and restic's logins only", async (t) => {
  if (!requireTool(t, "sshd", "ssh-keygen")) return;
  const dropin = renderCredentialFiles(site("vienna"), sites, jobs, placeholderCredentialValues(credentials)).hostFiles["vie-stor-1"].find(
    (f) => f.path === STORAGE_SSHD_DROPIN,
  )!;
  const dir = mkdtempSync(join(tmpdir(), "standort-credentials-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const staged = join(dir, "standort-storage.conf");
  writeFileSync(staged, dropin.content);
  const check = await run(dropin.check!.command.map((w) => (w === FILE_PLACEHOLDER ? staged : w)));
  assert.equal(check.code, 0, check.stderr);
  writeFileSync(`${staged}.broken`, dropin.content.replace("ForceCommand", "ForceComand"));
  const broken = await run(dropin.check!.command.map((w) => (w === FILE_PLACEHOLDER ? `${staged}.broken` : w)));
  assert.notEqual(broken.code, 0, "the check refuses a misspelt directive");
  // The main configuration as Debian ships it: the drop-ins first, then its own settings.
  await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "hostkey")]);
  writeFileSync(join(dir, "sshd_config"), `Include ${staged}\nHostKey ${join(dir, "hostkey")}\nSubsystem sftp internal-sftp\n`);
  const effective = async (user: string) => {
    const r = await run(["/usr/sbin/sshd", "-T", "-f", join(dir, "sshd_config"), "-C", `user=${user},host=x,addr=10.20.1.20`]);
    const get = (key: string) =>
      r.stdout
        .split("\n")
        .find((l) => l.startsWith(`${key} `))
        ?.slice(key.length + 1);
    return { keys: get("authorizedkeysfile"), force: get("forcecommand") };
  };
  assert.deepEqual(await effective("root"), {
    keys: ".ssh/authorized_keys /etc/standort/replication/authorized_keys",
    force: "none",
  });
  assert.deepEqual(await effective("restic"), {
    keys: "/etc/standort/sshd/restic_authorized_keys",
    force: "internal-sftp -d /var/lib/standort/backup",
  });
  assert.deepEqual(await effective("operator"), { keys: ".ssh/authorized_keys .ssh/authorized_keys2", force: "none" });
});

test("with every stack run (derived values), the two ends of each path hold matching halves", () => {
  const values = derivedCredentialValues(credentials, "test");
  const vienna = renderCredentialFiles(site("vienna"), sites, jobs, values);
  const karlsruhe = renderCredentialFiles(site("karlsruhe"), sites, jobs, values);
  assert.deepEqual([vienna.waiting, karlsruhe.waiting], [[], []]);
  const content = (d: typeof vienna, host: string, path: string) => d.hostFiles[host].find((f) => f.path === path)!.content;
  // vienna's private key for karlsruhe is the one karlsruhe's storage accepts, and only from vienna's supernet.
  const privateKey = content(vienna, "vie-stor-2", "/etc/standort/replication/id_ed25519");
  const publicKey = ed25519PublicOf(privateKey);
  assert.ok(
    content(karlsruhe, "fkb-stor-1", "/etc/standort/replication/authorized_keys").includes(
      `restrict,from="${site("vienna").supernet}",command="/usr/local/sbin/standort-replica-receive" ${publicKey} vienna-replication`,
    ),
  );
  // vienna pins karlsruhe's pair host key for karlsruhe's storage VIP.
  const hostKey = ed25519PublicOf(content(karlsruhe, "fkb-stor-2", "/etc/standort/sshd/ssh_host_ed25519_key"));
  assert.ok(content(vienna, "vie-stor-1", "/etc/standort/replication/known_hosts").includes(`10.20.1.5 ${hostKey}\n`));
});
