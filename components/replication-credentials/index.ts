import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { SiteModel } from "../../lib/model/model";
import { PlannedJob } from "../../lib/footprint/jobs";
import {
  BACKUP_DATABASE_CA,
  Credential,
  CredentialValues,
  DATABASE_TLS_FILES,
  DATABASE_TLS_VALIDITY,
  PASSWORD_LENGTH,
  databaseReplicationPasswords,
  generatedBy,
  parsePeerCredentials,
  placeholderCredentialValues,
  planCredentials,
  renderCredentialFiles,
} from "../../lib/footprint/credentials";
import { DATABASE_TLS } from "../../lib/footprint/database-files";
import type { DeliverableFile } from "../host-config";

export interface ReplicationCredentialsArgs {
  /** The site whose stack this is. */
  readonly model: SiteModel;
  /** Every site model (stores, targets and sources at other sites). */
  readonly sites: ReadonlyArray<SiteModel>;
  /** Every job of the footprint (`planJobs`), not only this site's: the jobs that reach this site decide what its hosts accept. */
  readonly jobs: ReadonlyArray<PlannedJob>;
  /**
   * Each peer's `credentials` stack output by site name, read through a
   * StackReference (`{ publicKeys, secrets }`, see `PeerCredentialsSchema`);
   * undefined while the peer has not run. Every site `credentialPeers` names
   * must have an entry.
   */
  readonly peers: Readonly<Record<string, pulumi.Input<unknown>>>;
}

/**
 * The credentials of the replication and backup jobs that this site's stack
 * generates (`generatedBy(planCredentials(...))`): Ed25519 keys from
 * `@pulumi/tls` (replication per target, the storage pair's host key, the
 * backup login) and passwords from `@pulumi/random` (restic per service and
 * store, database replication per path, dump users per database), and the
 * database TLS: a CA per site (ECDSA P-256 `tls.PrivateKey` + `tls.SelfSignedCert`)
 * and a server certificate per virtualization host (`tls.PrivateKey` +
 * `tls.CertRequest` + `tls.LocallySignedCert` signed by that CA, its DNS names
 * the site's database endpoints). Children are named `<name>-<credential id>`
 * (the certificates' keys `-key`, their requests `-request`).
 *
 * It renders the files each host receives and the Kubernetes Secrets of the
 * CronJobs from the generated values and the peers' published ones: paths and
 * every non-secret file come from a render with the public keys only (known at
 * preview, so diffs show), secret contents from the full render, marked secret.
 * A value a peer has not published yet leaves its file waiting (a comment).
 */
export class ReplicationCredentials extends pulumi.ComponentResource {
  /** The credentials this stack generates, as planned. */
  public readonly planned: ReadonlyArray<Credential>;
  /** Key resources by credential id (the certificates' ECDSA keys too). */
  public readonly keys: Readonly<Record<string, tls.PrivateKey>>;
  /** Database TLS certificates by credential id: the site's CA and its servers' certificates. */
  public readonly certificates: Readonly<Record<string, tls.SelfSignedCert | tls.LocallySignedCert>>;
  /** Password resources by credential id. */
  public readonly passwords: Readonly<Record<string, random.RandomPassword>>;
  /** Files by host name, for `Site`'s `hostFiles`; secret files carry secret contents. */
  public readonly files: Readonly<Record<string, ReadonlyArray<DeliverableFile>>>;
  /** Names of the Kubernetes Secrets the CronJobs mount (known at preview). */
  public readonly secretNames: ReadonlyArray<string>;
  /** Their data: Secret name → key → content. Secret. */
  public readonly kubernetesSecrets: pulumi.Output<Record<string, Record<string, string>>>;
  /** Public keys of the generated keys by credential id, for the peers (not secret). */
  public readonly publicKeys: pulumi.Output<Record<string, string>>;
  /**
   * The database CA's certificate by credential id, for the peers' bundles (not secret): the stack exports it
   * as `credentials.certificates`. Known once the CA is issued (unknown at its first preview).
   */
  public readonly publishedCertificates: pulumi.Output<Record<string, string>>;
  /** The generated values the peers' hosts need (database replication passwords) by credential id. Secret. */
  public readonly publishedSecrets: pulumi.Output<Record<string, string>>;
  /**
   * The replication password of each database replication job this site runs,
   * by job key; undefined while the source's stack has not published it. Secret.
   */
  public readonly replicationPasswords: pulumi.Output<Record<string, string | undefined>>;
  /** What waits for a peer's stack, one line each (no values). */
  public readonly waiting: pulumi.Output<string[]>;

  constructor(name: string, args: ReplicationCredentialsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:footprint:ReplicationCredentials", name, {}, opts);
    const site = args.model.name;
    const all = planCredentials(args.sites, args.jobs);
    const own = generatedBy(all, site);
    const needed = [...new Set(all.filter((c) => c.readers.includes(site)).map((c) => c.site))];
    const absent = needed.filter((peer) => !(peer in args.peers));
    if (absent.length > 0) throw new Error(`${name}: no outputs of ${absent.join(", ")} (credentials of theirs reach ${site})`);

    const keys: Record<string, tls.PrivateKey> = {};
    const passwords: Record<string, random.RandomPassword> = {};
    const certificates: Record<string, tls.SelfSignedCert | tls.LocallySignedCert> = {};
    const subject = (c: Credential) => ({ commonName: c.commonName ?? c.id, organization: "standort" });
    const ecdsaKey = (c: Credential) =>
      (keys[c.id] = new tls.PrivateKey(`${name}-${c.id}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this }));
    // CAs first: the server certificates need them.
    for (const credential of own.filter((c) => c.generator === "tls.SelfSignedCert")) {
      const key = ecdsaKey(credential);
      certificates[credential.id] = new tls.SelfSignedCert(
        `${name}-${credential.id}`,
        {
          privateKeyPem: pulumi.secret(key.privateKeyPem),
          subject: subject(credential),
          isCaCertificate: true,
          allowedUses: ["cert_signing", "crl_signing"],
          setSubjectKeyId: true,
          ...DATABASE_TLS_VALIDITY.ca,
        },
        { parent: this },
      );
    }
    for (const credential of own.filter((c) => c.generator === "tls.LocallySignedCert")) {
      const ca = credential.issuer === undefined ? undefined : certificates[credential.issuer];
      if (!ca || !keys[credential.issuer!]) throw new Error(`${name}: ${credential.id}: its CA ${credential.issuer} is not generated here`);
      const key = ecdsaKey(credential);
      const request = new tls.CertRequest(
        `${name}-${credential.id}-request`,
        { privateKeyPem: pulumi.secret(key.privateKeyPem), subject: subject(credential), dnsNames: [...(credential.dnsNames ?? [])] },
        { parent: this },
      );
      certificates[credential.id] = new tls.LocallySignedCert(
        `${name}-${credential.id}`,
        {
          certRequestPem: request.certRequestPem,
          caPrivateKeyPem: pulumi.secret(keys[credential.issuer!].privateKeyPem),
          caCertPem: ca.certPem,
          allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
          setSubjectKeyId: true,
          ...DATABASE_TLS_VALIDITY.server,
        },
        { parent: this },
      );
    }
    for (const credential of own) {
      if (credential.id in certificates) continue;
      if (credential.generator === "tls.PrivateKey") {
        keys[credential.id] = new tls.PrivateKey(`${name}-${credential.id}`, { algorithm: "ED25519" }, { parent: this });
      } else {
        // Letters and digits: env files, pgpass, option files and Secrets take them unquoted.
        passwords[credential.id] = new random.RandomPassword(
          `${name}-${credential.id}`,
          { length: PASSWORD_LENGTH, special: false },
          { parent: this },
        );
      }
    }

    // Public keys and certificates are derived from secrets but are public themselves.
    const sshKeys = Object.entries(keys).filter(([id]) => !(id in certificates));
    const ownPublic = pulumi.all(
      Object.fromEntries(sshKeys.map(([id, k]) => [id, pulumi.unsecret(k.publicKeyOpenssh).apply((p) => p.trim())])),
    );
    const ownSecrets = pulumi.secret(
      pulumi.all({
        ...Object.fromEntries(sshKeys.map(([id, k]) => [id, k.privateKeyOpenssh])),
        ...Object.fromEntries(Object.entries(passwords).map(([id, p]) => [id, p.result])),
      }),
    );
    // The database TLS values apart: a certificate not issued yet (unknown at preview) must not make every file unknown.
    const ownCertificates: pulumi.Output<Record<string, string>> = pulumi.all(
      Object.fromEntries(Object.entries(certificates).map(([id, c]) => [id, pulumi.unsecret(c.certPem)])),
    );
    const ownTlsKeys = pulumi.secret(pulumi.all(Object.fromEntries(Object.keys(certificates).map((id) => [id, keys[id].privateKeyPem]))));
    const peerOutputs = pulumi
      .all(Object.fromEntries(needed.map((peer) => [peer, pulumi.output(args.peers[peer])])))
      .apply((outputs) => Object.entries(outputs).map(([peer, value]) => parsePeerCredentials(peer, value)));
    const peerPublic = pulumi.unsecret(
      peerOutputs.apply((list) => Object.assign({}, ...list.map((p) => p.publicKeys)) as Record<string, string>),
    );
    const peerCertificates = pulumi.unsecret(
      peerOutputs.apply((list) => Object.assign({}, ...list.map((p) => p.certificates)) as Record<string, string>),
    );
    const peerSecrets = pulumi.secret(
      peerOutputs.apply((list) => Object.assign({}, ...list.map((p) => p.secrets)) as Record<string, string>),
    );

    // Everything but this stack's own TLS values, which stand in as placeholders (their files come from `tls*` below).
    const placeholders = placeholderCredentialValues(all);
    const ownTlsIds = Object.keys(certificates);
    const pick = (record: Readonly<Record<string, string | undefined>>, ids: ReadonlyArray<string>) =>
      Object.fromEntries(ids.map((id) => [id, record[id]]));
    const publicValues = pulumi.all([ownPublic, peerPublic, peerCertificates]).apply(([mine, theirs, theirCertificates]) => ({
      publicKeys: { ...theirs, ...mine },
      certificates: { ...theirCertificates, ...pick(placeholders.certificates, ownTlsIds) },
    }));
    const values: pulumi.Output<CredentialValues> = pulumi.secret(
      pulumi.all([publicValues, ownSecrets, peerSecrets]).apply(([p, mine, theirs]) => ({
        ...p,
        secrets: { ...theirs, ...mine, ...pick(placeholders.secrets, ownTlsIds) },
      })),
    );
    // The CA files (the bundle, the dumps' CA) need the CAs alone: depending on the servers' certificates too would
    // put key, request and certificate before every storage host's delivery (one step more on the deploy's path).
    const caIds = own.filter((c) => c.generator === "tls.SelfSignedCert").map((c) => c.id);
    const ownCaCertificates: pulumi.Output<Record<string, string>> = pulumi.all(
      Object.fromEntries(caIds.map((id) => [id, pulumi.unsecret(certificates[id].certPem)])),
    );
    const caPublicValues = pulumi.all([publicValues, ownCaCertificates]).apply(([p, mine]) => ({
      ...p,
      certificates: { ...p.certificates, ...mine },
    }));
    const caValues: pulumi.Output<CredentialValues> = pulumi.secret(
      pulumi.all([values, ownCaCertificates]).apply(([v, mine]) => ({ ...v, certificates: { ...v.certificates, ...mine } })),
    );
    const tlsPublicValues = pulumi.all([publicValues, ownCertificates]).apply(([p, mine]) => ({
      ...p,
      certificates: { ...p.certificates, ...mine },
    }));
    const tlsValues: pulumi.Output<CredentialValues> = pulumi.secret(
      pulumi.all([values, ownCertificates, ownTlsKeys]).apply(([v, mine, myKeys]) => ({
        ...v,
        certificates: { ...v.certificates, ...mine },
        secrets: { ...v.secrets, ...myKeys },
      })),
    );

    // The shape (paths, modes, Secret names and keys) never depends on values: from placeholders, known at preview.
    const shape = renderCredentialFiles(args.model, args.sites, args.jobs, placeholders);
    const render = (v: CredentialValues) => {
      const rendered = renderCredentialFiles(args.model, args.sites, args.jobs, v);
      const want = JSON.stringify(Object.entries(shape.hostFiles).map(([h, f]) => [h, f.map((x) => x.path)]));
      const got = JSON.stringify(Object.entries(rendered.hostFiles).map(([h, f]) => [h, f.map((x) => x.path)]));
      if (want !== got) throw new Error(`${name}: the generated values render other files than the plan: ${got}`);
      return rendered;
    };
    // Non-secret files depend on public values only; rendering them without the secrets keeps them diffable.
    const publicRender = publicValues.apply((p) => render({ ...p, secrets: placeholders.secrets }));
    const fullRender = values.apply(render);
    const tlsPublicRender = tlsPublicValues.apply((p) => render({ ...p, secrets: placeholders.secrets }));
    const tlsFullRender = tlsValues.apply(render);
    const caPublicRender = caPublicValues.apply((p) => render({ ...p, secrets: placeholders.secrets }));
    const caFullRender = caValues.apply(render);
    const caFiles: ReadonlyArray<string> = [DATABASE_TLS.ca, BACKUP_DATABASE_CA];

    const files: Record<string, DeliverableFile[]> = {};
    for (const [host, list] of Object.entries(shape.hostFiles)) {
      files[host] = list.map((file, i) => {
        const tls = DATABASE_TLS_FILES.includes(file.path);
        const ca = caFiles.includes(file.path);
        const from = file.secret
          ? ca
            ? caFullRender
            : tls
              ? tlsFullRender
              : fullRender
          : ca
            ? caPublicRender
            : tls
              ? tlsPublicRender
              : publicRender;
        const content = from.apply((r) => r.hostFiles[host][i].content);
        return { ...file, content: file.secret ? pulumi.secret(content) : content };
      });
    }

    this.planned = own;
    this.keys = keys;
    this.certificates = certificates;
    this.passwords = passwords;
    this.files = files;
    this.secretNames = Object.keys(shape.kubernetesSecrets).sort();
    // A backup Secret carries the site's database CA too, so the Secrets need the TLS render.
    this.kubernetesSecrets = pulumi.secret(caFullRender.apply((r) => r.kubernetesSecrets as Record<string, Record<string, string>>));
    this.publicKeys = ownPublic;
    const publishedCertificates = own.filter((c) => c.publish === "certificate").map((c) => c.id);
    this.publishedCertificates = ownCertificates.apply((c) => pick(c, publishedCertificates) as Record<string, string>);
    const published = own.filter((c) => c.publish === "secret").map((c) => c.id);
    this.publishedSecrets = pulumi.secret(ownSecrets.apply((s) => Object.fromEntries(published.map((id) => [id, s[id]]))));
    // The lines name files and credential ids, never values.
    this.replicationPasswords = pulumi.secret(values.apply((v) => databaseReplicationPasswords(site, args.jobs, v)));
    // Own TLS values are always this stack's to issue: what waits is only ever a peer's, known without them.
    this.waiting = pulumi.unsecret(fullRender.apply((r) => [...r.waiting]));
    this.registerOutputs({
      planned: this.planned,
      keys: this.keys,
      certificates: this.certificates,
      passwords: this.passwords,
      files: this.files,
      secretNames: this.secretNames,
      kubernetesSecrets: this.kubernetesSecrets,
      publicKeys: this.publicKeys,
      publishedCertificates: this.publishedCertificates,
      publishedSecrets: this.publishedSecrets,
      replicationPasswords: this.replicationPasswords,
      waiting: this.waiting,
    });
  }
}
