// The Kubernetes runtime's host files: kubeadm configurations checked against the strict kubeadm
// schema (and shown to reject broken ones), the API VIP, the cluster ranges, the layout of the nodes.
import test from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { cidr, containsAddress, parseAddress } from "../lib/net/ipv4";
import {
  KUBERNETES_PATHS,
  POD_CIDR,
  SERVICE_CIDR,
  apiVip,
  caCertHash,
  clusterLayout,
  clusterNetworkProblems,
  kubeadmDocuments,
  kubernetesHostFiles,
  placeholderBootstrapValues,
  validateKubeadmDocument,
} from "../lib/kubernetes";
import { requireTool } from "./helpers/tools";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const KUBERNETES_SITES = ["frankfurt", "helsinki"];

/** The parsed kubeadm documents of every node of a site, by host. */
function configs(name: string): Record<string, Record<string, unknown>[]> {
  const model = site(name);
  const files = kubernetesHostFiles(model, sites, placeholderBootstrapValues(model));
  return Object.fromEntries(
    Object.entries(files).map(([host, list]) => {
      const file = list.find((f) => f.path === KUBERNETES_PATHS.kubeadmConfig)!;
      return [host, parseAllDocuments(file.content).map((d) => d.toJS() as Record<string, unknown>)];
    }),
  );
}

test("the Kubernetes sites are frankfurt and helsinki; compose sites get no Kubernetes files", () => {
  assert.deepEqual(
    sites.filter((s) => s.virtualization.runtime === "kubernetes").map((s) => s.name),
    KUBERNETES_SITES,
  );
  for (const name of ["vienna", "karlsruhe"])
    assert.deepEqual(kubernetesHostFiles(site(name), sites, placeholderBootstrapValues(site(name))), {});
});

test("every rendered kubeadm configuration of frankfurt and helsinki passes the strict kubeadm v1beta4 schema", () => {
  for (const name of KUBERNETES_SITES) {
    const byHost = configs(name);
    assert.equal(Object.keys(byHost).length, 4, name);
    for (const [host, docs] of Object.entries(byHost)) {
      assert.deepEqual(docs.flatMap(validateKubeadmDocument), [], `${name} ${host}`);
      for (const doc of docs) assert.equal(doc.apiVersion, "kubeadm.k8s.io/v1beta4");
    }
    // The first node inits (InitConfiguration + ClusterConfiguration), the others join.
    const kinds = Object.fromEntries(Object.entries(byHost).map(([h, docs]) => [h, docs.map((d) => d.kind).join("+")]));
    const code = site(name).code;
    assert.deepEqual(kinds, {
      [`${code}-virt-1`]: "InitConfiguration+ClusterConfiguration",
      [`${code}-virt-2`]: "JoinConfiguration",
      [`${code}-virt-3`]: "JoinConfiguration",
      [`${code}-virt-4`]: "JoinConfiguration",
    });
  }
});

test("a highly available control plane: three control-plane nodes behind the VIP, the fourth host a worker", () => {
  for (const name of KUBERNETES_SITES) {
    const code = site(name).code;
    assert.deepEqual(clusterLayout(site(name)), {
      init: `${code}-virt-1`,
      controlPlane: [`${code}-virt-1`, `${code}-virt-2`, `${code}-virt-3`],
      workers: [`${code}-virt-4`],
    });
    const byHost = configs(name);
    const endpoint = `${apiVip(site(name))}:6443`;
    assert.equal(byHost[`${code}-virt-1`][1].controlPlaneEndpoint, endpoint);
    for (const host of [`${code}-virt-2`, `${code}-virt-3`, `${code}-virt-4`]) {
      const join = byHost[host][0] as any;
      assert.equal(join.discovery.bootstrapToken.apiServerEndpoint, endpoint, host);
      // Joining nodes pin the CA the stack generated, never trust the first answer.
      assert.deepEqual(join.discovery.bootstrapToken.caCertHashes, [caCertHash(placeholderBootstrapValues(site(name)).ca.certPem)]);
      assert.equal(join.discovery.bootstrapToken.unsafeSkipCAVerification, undefined);
      assert.equal(join.controlPlane !== undefined, host !== `${code}-virt-4`, host);
    }
  }
});

test("the token and the certificate key come from the inputs, never from the renderer", () => {
  const model = site("frankfurt");
  const values = { ...placeholderBootstrapValues(model), bootstrapToken: "q1w2e3.r4t5y6u7i8o9p0a1", certificateKey: "ab".repeat(32) };
  const docs = kubeadmDocuments(
    model,
    model.hosts.find((h) => h.name === "fra-virt-1")!,
    values,
  ) as any[];
  assert.equal(docs[0].bootstrapTokens[0].token, "q1w2e3.r4t5y6u7i8o9p0a1");
  assert.equal(docs[0].certificateKey, "ab".repeat(32));
  const join = kubeadmDocuments(
    model,
    model.hosts.find((h) => h.name === "fra-virt-2")!,
    values,
  ) as any[];
  assert.equal(join[0].controlPlane.certificateKey, "ab".repeat(32));
  // A malformed token is refused before anything is rendered.
  assert.throws(
    () => kubernetesHostFiles(model, sites, { ...values, bootstrapToken: "ABCDEF.0123456789abcdef" }),
    /bootstrapToken must be \[a-z0-9\]\{6\}\.\[a-z0-9\]\{16\}/,
  );
  assert.throws(
    () => kubernetesHostFiles(model, sites, { ...values, certificateKey: "xyz" }),
    /certificateKey must be 64 lower-case hex digits/,
  );
});

test("the kubeadm schema rejects an unknown field, a wrong type and a missing required field, naming each", () => {
  const model = site("frankfurt");
  const values = placeholderBootstrapValues(model);
  const init = kubeadmDocuments(
    model,
    model.hosts.find((h) => h.name === "fra-virt-1")!,
    values,
  ) as any[];
  const join = kubeadmDocuments(
    model,
    model.hosts.find((h) => h.name === "fra-virt-2")!,
    values,
  ) as any[];

  const unknown = structuredClone(init[0]);
  unknown.nodeRegistration.kubeletExtraArg = [];
  assert.deepEqual(validateKubeadmDocument(unknown), ["InitConfiguration /nodeRegistration/kubeletExtraArg: unknown field"]);

  const wrongType = structuredClone(init[0]);
  wrongType.localAPIEndpoint.bindPort = "6443";
  assert.deepEqual(validateKubeadmDocument(wrongType), ["InitConfiguration /localAPIEndpoint/bindPort: must be integer"]);

  // v1beta3's string map where v1beta4 wants a list of {name, value}.
  const oldShape = structuredClone(init[1]);
  oldShape.apiServer.extraArgs = { "audit-log-path": "/var/log/audit.log" };
  assert.deepEqual(validateKubeadmDocument(oldShape), ["ClusterConfiguration /apiServer/extraArgs: must be array"]);

  const missing = structuredClone(join[0]);
  delete missing.discovery.bootstrapToken.token;
  assert.deepEqual(validateKubeadmDocument(missing), ["JoinConfiguration /discovery/bootstrapToken/token: is required"]);

  const noDiscovery = structuredClone(join[0]);
  delete noDiscovery.discovery;
  assert.deepEqual(validateKubeadmDocument(noDiscovery), ["JoinConfiguration /discovery: is required"]);

  const badToken = structuredClone(join[0]);
  badToken.discovery.bootstrapToken.token = "not-a-token";
  assert.match(validateKubeadmDocument(badToken).join("\n"), /^JoinConfiguration \/discovery\/bootstrapToken\/token: must match pattern/);

  const v1beta3 = { ...structuredClone(init[1]), apiVersion: "kubeadm.k8s.io/v1beta3" };
  assert.deepEqual(validateKubeadmDocument(v1beta3), ['ClusterConfiguration /apiVersion: must be "kubeadm.k8s.io/v1beta4"']);
});

test("the API VIP is a free address of the app segment, the same every time", () => {
  for (const model of sites) {
    const vip = apiVip(model);
    const app = model.segments.find((s) => s.name === "app")!;
    assert.ok(containsAddress(cidr(app.cidr), parseAddress(vip)!), `${model.name}: ${vip} is in ${app.cidr}`);
    const used = [
      app.gateway,
      ...model.pairs.flatMap((p) => p.vips.map((v) => v.address)),
      ...model.hosts.flatMap((h) => h.interfaces.map((i) => i.address)),
    ];
    assert.ok(!used.includes(vip), `${model.name}: ${vip} collides with a host or a VIP`);
    assert.equal(apiVip(model), vip);
  }
  assert.equal(apiVip(site("frankfurt")), "10.10.4.6");
  assert.equal(apiVip(site("helsinki")), "10.40.4.6");
});

test("the API VIP moves past an address a host holds, and fails naming the holders when none is free", () => {
  const model = site("frankfurt");
  const app = model.segments.find((s) => s.name === "app")!;
  const squatter = (address: string, i: number) => ({
    name: `fra-virt-${90 + i}`,
    role: "virtualization" as const,
    ordinal: 90 + i,
    physical: "x",
    interfaces: [{ segment: "app", address, prefixLength: app.prefixLength }],
  });
  const one = { ...model, hosts: [...model.hosts, squatter("10.10.4.6", 0)] };
  assert.equal(apiVip(one), "10.10.4.7");
  const full = { ...model, hosts: [...model.hosts, ...["10.10.4.6", "10.10.4.7", "10.10.4.8", "10.10.4.9"].map(squatter)] };
  assert.throws(
    () => apiVip(full),
    /frankfurt: no free address for the Kubernetes API VIP in app \(10\.10\.4\.0\/22\) host numbers 6-9: taken are .*10\.10\.4\.9 \(fra-virt-93\)/,
  );
});

test("the pod and service ranges overlap no site's supernet, own prefix or allowlist, and the check catches one that does", () => {
  assert.deepEqual(clusterNetworkProblems(sites), []);
  const clash = { ...site("vienna"), supernet: "10.244.0.0/16" };
  assert.deepEqual(clusterNetworkProblems([...sites.filter((s) => s.name !== "vienna"), clash]), [
    {
      file: "sites/vienna.yaml",
      range: POD_CIDR,
      message: `network.supernet: 10.244.0.0/16 overlaps the Kubernetes pod range ${POD_CIDR}: pods could not reach it; pick another range in lib/kubernetes/constants.ts or another address for the site`,
    },
  ]);
  const allowlisted = { ...site("frankfurt"), management: { ...site("frankfurt").management, allowlist: ["10.96.7.0/24"] } };
  assert.match(
    clusterNetworkProblems([allowlisted])
      .map((p) => `${p.file}: ${p.message}`)
      .join("\n"),
    new RegExp(
      `^sites/frankfurt.yaml: management.allowlist\\[0\\]: 10.96.7.0/24 overlaps the Kubernetes service range ${SERVICE_CIDR.replace(/\./g, "\\.")}`,
    ),
  );
  // The renderer refuses to render a cluster whose ranges collide with a site.
  assert.throws(
    () => kubernetesHostFiles(site("frankfurt"), [...sites, clash], placeholderBootstrapValues(site("frankfurt"))),
    /sites\/vienna.yaml: network.supernet/,
  );
  assert.deepEqual(
    clusterNetworkProblems([], { pods: "10.96.0.0/16", services: "10.96.0.0/20" }).map((p) => p.message),
    ["the pod range 10.96.0.0/16 overlaps the service range 10.96.0.0/20"],
  );
});

test("files carrying a secret are secret and 0600; kube-vip only on frankfurt's control-plane nodes; same input, same bytes", () => {
  for (const name of KUBERNETES_SITES) {
    const model = site(name);
    const files = kubernetesHostFiles(model, sites, placeholderBootstrapValues(model));
    assert.deepEqual(JSON.stringify(files), JSON.stringify(kubernetesHostFiles(model, sites, placeholderBootstrapValues(model))));
    for (const [host, list] of Object.entries(files)) {
      for (const f of list) {
        const carriesSecret = f.content.includes("abcdef.0123456789abcdef") || f.content.includes("PRIVATE KEY");
        assert.equal(f.secret, carriesSecret, `${host} ${f.path}`);
        if (f.secret) assert.equal(f.mode, "0600", `${host} ${f.path}`);
        assert.ok(f.content.endsWith("\n"), `${host} ${f.path} ends in a newline`);
      }
      const vip = list.filter((f) => f.path.startsWith("/etc/standort/kubernetes/kube-vip")).map((f) => f.path);
      const expected =
        name === "helsinki"
          ? []
          : host.endsWith("-1")
            ? [KUBERNETES_PATHS.kubeVipInitManifest, KUBERNETES_PATHS.kubeVipManifest]
            : host.endsWith("-4")
              ? []
              : [KUBERNETES_PATHS.kubeVipManifest];
      assert.deepEqual(vip, expected, `${host}`);
      // The CA only where kubeadm init runs.
      assert.equal(
        list.some((f) => f.path === KUBERNETES_PATHS.caKey),
        host.endsWith("-1"),
        host,
      );
    }
  }
});

test("the CA pin is the SHA-256 of the CA's public key, as openssl computes it", (t) => {
  if (!requireTool(t, "openssl")) return;
  const { ca } = placeholderBootstrapValues(site("helsinki"));
  const dir = mkdtempSync(join(tmpdir(), "standort-ca-"));
  try {
    writeFileSync(join(dir, "ca.crt"), ca.certPem);
    const der = execFileSync("sh", [
      "-c",
      `openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex`,
      "x",
      join(dir, "ca.crt"),
    ]).toString();
    assert.equal(caCertHash(ca.certPem), `sha256:${der.trim().split(/\s+/).pop()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
