// The Workloads and ClusterCredentials components under the Pulumi mock runtime: the Deployments each
// site creates (read-write where it takes writes, read-only where it answers reads), their environment,
// NFS volumes and ingress; secrets never in plain text; the generated token and key in the right shape.
import test from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import * as kubernetes from "@pulumi/kubernetes";
import { loadFootprint } from "../lib/footprint/load";
import { siteServices } from "../lib/footprint/services";
import { MockRunResult, RecordedResource, runUnderMocks } from "../lib/preview/harness";
import { derivedCertificate, derivedEcdsaKey } from "../lib/footprint/credentials";
import { Workloads } from "../components/kubernetes-workloads";
import { ClusterCredentials, kubernetesDeliverables } from "../components/kubernetes-credentials";
import { INGRESS_CLASSES, KUBERNETES_PATHS, caCertHash, serviceSecretData, validateKubeadmDocument } from "../lib/kubernetes";
import { parseAllDocuments } from "yaml";

const { footprint, sites } = loadFootprint();
const site = (name: string) => sites.find((s) => s.name === name)!;

/** Obviously fake secret values, each unique so a leak is found by a plain text search. */
const SECRETS: Record<string, Record<string, string>> = {
  groupware: { "database-password": "fake-groupware-db-7f3a" },
  webhosting: { "database-password": "fake-webhosting-db-91c2" },
  git: { "database-password": "fake-git-db-4d5e", "secret-key": "fake-git-key-0b8f" },
  mail: { "database-password": "fake-mail-db-6a1d", "session-key": "fake-mail-session-2c7e" },
  tickets: { "database-password": "fake-tickets-db-3e9b" },
};
const KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{ name: admin, user: { token: fake-kubeconfig-token } }]\n";

async function workloadsAt(name: string): Promise<MockRunResult> {
  return runUnderMocks({
    stack: name,
    config: { "standort:serviceSecrets": JSON.stringify(SECRETS), "standort:kubeconfig": KUBECONFIG },
    secretKeys: ["standort:serviceSecrets", "standort:kubeconfig"],
    program: () => {
      const config = new pulumi.Config("standort");
      const provider = new kubernetes.Provider(`${name}-k8s`, { kubeconfig: config.requireSecret("kubeconfig") });
      const w = new Workloads(`${name}-workloads`, {
        model: site(name),
        services: siteServices(footprint, sites, name),
        footprint,
        serviceSecrets: config.requireSecretObject<Record<string, Record<string, string>>>("serviceSecrets"),
        provider,
      });
      return { deployments: Object.keys(w.deployments) };
    },
  });
}

const ofType = (run: MockRunResult, type: string) => run.resources.filter((r) => r.type === type);
const container = (d: RecordedResource) => (d.inputs.spec as any).template.spec.containers[0];
const envOf = (d: RecordedResource) =>
  Object.fromEntries(container(d).env.map((e: any) => [e.name, e.value ?? `secret:${e.valueFrom.secretKeyRef.key}`]));

test("frankfurt: groupware read-write (its primary), git and webhosting read-only (their standby)", async () => {
  const run = await workloadsAt("frankfurt");
  const deployments = ofType(run, "kubernetes:apps/v1:Deployment");
  assert.deepEqual(
    deployments.map((d) => [
      d.name,
      (d.inputs.metadata as any).namespace,
      (d.inputs.metadata as any).name,
      (d.inputs.spec as any).replicas,
    ]),
    [
      ["frankfurt-workloads-git-ro-deployment", "git", "git-ro", 2],
      ["frankfurt-workloads-groupware-deployment", "groupware", "groupware", 3],
      ["frankfurt-workloads-webhosting-ro-deployment", "webhosting", "webhosting-ro", 3],
    ],
  );
  const groupware = deployments.find((d) => d.name.endsWith("groupware-deployment"))!;
  assert.deepEqual(envOf(groupware), {
    EGW_DB_NAME: "groupware",
    EGW_DB_PASS: "secret:database-password",
    EGW_DB_TYPE: "pgsql",
    STANDORT_ACCESS: "read-write",
    STANDORT_SERVICE: "groupware",
    TZ: "Europe/Berlin",
  });
  const spec = (groupware.inputs.spec as any).template.spec;
  assert.deepEqual(spec.volumes, [{ name: "tree-data", nfs: { server: "10.10.1.5", path: "/srv/groupware/data" } }]);
  assert.deepEqual(container(groupware).volumeMounts, [{ name: "tree-data", mountPath: "/var/lib/egroupware" }]);
  assert.deepEqual(container(groupware).ports, [{ name: "http", containerPort: 8080, protocol: "TCP" }]);

  const webhosting = deployments.find((d) => d.name.endsWith("webhosting-ro-deployment"))!;
  assert.equal(envOf(webhosting).STANDORT_ACCESS, "read-only");
  assert.equal(envOf(webhosting).PANEL_READ_ONLY, "yes");
  const ro = (webhosting.inputs.spec as any).template.spec;
  assert.deepEqual(ro.volumes, [
    { name: "tree-htdocs", nfs: { server: "10.10.1.5", path: "/srv/web/htdocs", readOnly: true } },
    { name: "tree-uploads", nfs: { server: "10.10.1.5", path: "/srv/web/uploads", readOnly: true } },
  ]);
  assert.ok(container(webhosting).volumeMounts.every((m: any) => m.readOnly === true));

  const ingresses = ofType(run, "kubernetes:networking.k8s.io/v1:Ingress");
  assert.deepEqual(
    ingresses.map((i) => [
      (i.inputs.metadata as any).name,
      (i.inputs.spec as any).ingressClassName,
      (i.inputs.spec as any).rules.map((r: any) => r.host),
    ]),
    [
      ["git-ro", INGRESS_CLASSES.readOnly, ["git-de.standby.example.net"]],
      ["groupware", INGRESS_CLASSES.readWrite, ["cloud.example.com"]],
      ["webhosting-ro", INGRESS_CLASSES.readOnly, ["web.example.com", "webhosting-de.standby.example.net"]],
    ],
  );
  // Each Ingress sends its names to the Service of the same instance.
  for (const i of ingresses)
    assert.equal((i.inputs.spec as any).rules[0].http.paths[0].backend.service.name, (i.inputs.metadata as any).name);
});

test("helsinki: webhosting and git read-write, groupware read-only with its read-only environment on top", async () => {
  const run = await workloadsAt("helsinki");
  const deployments = ofType(run, "kubernetes:apps/v1:Deployment");
  assert.deepEqual(
    deployments.map((d) => [(d.inputs.metadata as any).name, (d.inputs.spec as any).replicas]),
    [
      ["git", 2],
      ["groupware-ro", 3],
      ["webhosting", 3],
    ],
  );
  const groupware = deployments.find((d) => (d.inputs.metadata as any).name === "groupware-ro")!;
  assert.deepEqual(envOf(groupware), {
    EGW_DB_NAME: "groupware",
    EGW_DB_PASS: "secret:database-password",
    EGW_DB_TYPE: "pgsql",
    EGW_READ_ONLY: "true",
    STANDORT_ACCESS: "read-only",
    STANDORT_SERVICE: "groupware",
    TZ: "Europe/Berlin",
  });
  assert.deepEqual((groupware.inputs.spec as any).template.spec.volumes, [
    { name: "tree-data", nfs: { server: "10.40.2.5", path: "/srv/groupware/data", readOnly: true } },
  ]);
  assert.deepEqual(container(groupware).volumeMounts, [{ name: "tree-data", mountPath: "/var/lib/egroupware", readOnly: true }]);
  const git = deployments.find((d) => (d.inputs.metadata as any).name === "git")!;
  assert.equal(envOf(git).FORGEJO__repository__READ_ONLY, undefined, "the read-only switch stays out of the read-write instance");
  assert.deepEqual(
    ofType(run, "kubernetes:networking.k8s.io/v1:Ingress").map((i) => [
      (i.inputs.spec as any).ingressClassName,
      (i.inputs.spec as any).rules.map((r: any) => r.host),
    ]),
    [
      [INGRESS_CLASSES.readWrite, ["git.example.com"]],
      [INGRESS_CLASSES.readOnly, ["cloud.example.com", "groupware-fi.standby.example.net"]],
      [INGRESS_CLASSES.readWrite, ["web.example.com"]],
    ],
  );
});

test("no resource holds a service secret or the kubeconfig in plain text; Secrets are secret as a whole", async () => {
  for (const name of ["frankfurt", "helsinki"]) {
    const run = await workloadsAt(name);
    const text = JSON.stringify(run);
    for (const values of Object.values(SECRETS))
      for (const value of Object.values(values)) assert.ok(!text.includes(value), `${name}: ${value} in clear`);
    assert.ok(!text.includes("fake-kubeconfig-token"));
    const secrets = ofType(run, "kubernetes:core/v1:Secret");
    assert.deepEqual(
      secrets.map((s) => [(s.inputs.metadata as any).name, s.inputs.stringData]),
      ["git", "groupware", "webhosting"].map((svc) => [`${svc}-secrets`, "[secret]"]),
    );
    // Every child of the component is named after it, through the site's provider, and the add-ons come too.
    const children = run.resources.filter((r) => r.parent?.endsWith(`::${name}-workloads`));
    assert.ok(children.every((r) => r.name.startsWith(`${name}-workloads-`)));
    assert.deepEqual(
      ofType(run, "kubernetes:apps/v1:DaemonSet").map((d) => (d.inputs.metadata as any).name),
      // By URN: the child names hold the namespace (kube-flannel, standort-ingress).
      ["kube-flannel-ds", "ingress-ro", "ingress-rw"],
    );
  }
});

test("a missing service secret stops the deployment with a message naming the service and the secret; compose sites are refused", () => {
  const git = footprint.services.find((s) => s.name === "git")!;
  assert.throws(
    () => serviceSecretData(git, { ...SECRETS, git: { "database-password": "fake-git-db-4d5e" } }),
    /^Error: standort:serviceSecrets: git: secret-key is required by its workload: pulumi config set --secret --path 'standort:serviceSecrets.git.secret-key' <value>$/,
  );
  assert.deepEqual(serviceSecretData(git, SECRETS), { "database-password": "fake-git-db-4d5e", "secret-key": "fake-git-key-0b8f" });
  assert.throws(
    () =>
      new Workloads("vie-workloads", {
        model: site("vienna"),
        services: [],
        footprint,
        serviceSecrets: {},
        provider: undefined as unknown as kubernetes.Provider,
      }),
    /vienna runs compose, not Kubernetes/,
  );
});

/** Mocks that generate what the random and tls providers would: RandomString honours its alphabet. */
async function withGeneratingMocks<T>(
  program: () => pulumi.Output<T>,
): Promise<{ value: T; secret: boolean; resources: Array<{ type: string; name: string; inputs: any }> }> {
  const resources: Array<{ type: string; name: string; inputs: any }> = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        resources.push({ type: args.type, name: args.name, inputs: args.inputs });
        const seed = Buffer.from(args.name);
        let state: Record<string, unknown> = {};
        if (args.type === "random:index/randomString:RandomString") {
          const alphabet = `${args.inputs.lower ? "abcdefghijklmnopqrstuvwxyz" : ""}${args.inputs.upper ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ" : ""}${args.inputs.numeric ? "0123456789" : ""}`;
          state = {
            result: Array.from(
              { length: Number(args.inputs.length) },
              (_, i) => alphabet[(seed[i % seed.length] + i * 7) % alphabet.length],
            ).join(""),
          };
        } else if (args.type === "random:index/randomBytes:RandomBytes") {
          state = { hex: Buffer.alloc(Number(args.inputs.length), 0xab).toString("hex") };
        } else if (args.type === "tls:index/privateKey:PrivateKey") {
          state = derivedEcdsaKey(`mock:${args.name}`);
        } else if (args.type === "tls:index/selfSignedCert:SelfSignedCert") {
          // Secret inputs arrive wrapped ({ value }) in mocks.
          const key = args.inputs.privateKeyPem;
          const pem = typeof key === "string" ? key : String(key?.value);
          state = { certPem: derivedCertificate({ subjectKeyPem: pem, commonName: "kubernetes", ca: true }) };
        }
        return { id: `${args.name}-id`, state: { ...args.inputs, ...state } };
      },
      call: () => ({}),
    },
    "standort",
    "test",
    false,
  );
  const output = program();
  const secret = await pulumi.isSecret(output);
  const value = await new Promise<T>((resolve) => output.apply((v) => resolve(v)));
  // Wait for every outstanding registration before the next test installs its mocks.
  await pulumi.runtime.disconnect();
  return { value, secret, resources };
}

test("ClusterCredentials: a [a-z0-9]{6}.[a-z0-9]{16} token, a 32-byte hex key and an ECDSA CA, all secret; the CA pin public", async () => {
  let hash: pulumi.Output<string> | undefined;
  const { value, secret, resources } = await withGeneratingMocks(() => {
    const c = new ClusterCredentials("fra-kubernetes", { model: site("frankfurt") });
    hash = c.caCertHash;
    return c.values;
  });
  assert.equal(secret, true);
  assert.match(value.bootstrapToken, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  assert.match(value.certificateKey, /^[a-f0-9]{64}$/);
  assert.match(value.ca.keyPem, /BEGIN EC PRIVATE KEY/);
  assert.equal(await pulumi.isSecret(hash!), false);
  assert.equal(await new Promise<string>((r) => hash!.apply(r)), caCertHash(value.ca.certPem));
  const strings = resources.filter((r) => r.type === "random:index/randomString:RandomString");
  assert.deepEqual(
    strings.map((r) => [r.name, r.inputs.length, r.inputs.upper, r.inputs.lower, r.inputs.numeric, r.inputs.special]),
    [
      ["fra-kubernetes-token-id", 6, false, true, true, false],
      ["fra-kubernetes-token-secret", 16, false, true, true, false],
    ],
  );
  assert.deepEqual(
    resources.filter((r) => r.type.startsWith("tls:")).map((r) => [r.name, r.inputs.algorithm ?? r.inputs.isCaCertificate]),
    [
      ["fra-kubernetes-ca-key", "ECDSA"],
      ["fra-kubernetes-ca", true],
    ],
  );
});

test("kubernetesDeliverables: the kubeadm files and the CA key carry the generated values and stay secret", async () => {
  const { value } = await withGeneratingMocks(() => {
    const c = new ClusterCredentials("hel-kubernetes", { model: site("helsinki") });
    const files = kubernetesDeliverables(site("helsinki"), sites, c.values);
    const pick = (host: string, path: string) => files[host].find((f) => f.path === path)!;
    const config = pick("hel-virt-2", KUBERNETES_PATHS.kubeadmConfig);
    const key = pick("hel-virt-1", KUBERNETES_PATHS.caKey);
    const cert = pick("hel-virt-1", KUBERNETES_PATHS.caCert);
    return pulumi
      .all([
        c.values,
        pulumi.output(config.content),
        pulumi.isSecret(pulumi.output(config.content)),
        pulumi.isSecret(pulumi.output(key.content)),
        pulumi.isSecret(pulumi.output(cert.content)),
      ])
      .apply(([values, text, configSecret, keySecret, certSecret]) => ({
        values,
        text,
        configSecret,
        keySecret,
        certSecret,
        secretFlag: config.secret,
      }));
  });
  assert.equal(value.configSecret, true);
  assert.equal(value.keySecret, true);
  assert.equal(value.certSecret, false);
  assert.equal(value.secretFlag, true);
  const docs = parseAllDocuments(value.text).map((d) => d.toJS());
  assert.deepEqual(docs.flatMap(validateKubeadmDocument), []);
  assert.equal(docs[0].discovery.bootstrapToken.token, value.values.bootstrapToken);
  assert.equal(docs[0].controlPlane.certificateKey, value.values.certificateKey);
  assert.deepEqual(docs[0].discovery.bootstrapToken.caCertHashes, [caCertHash(value.values.ca.certPem)]);
});
