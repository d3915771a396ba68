/**
 * The kubeadm configuration of each cluster node (`kubeadm.k8s.io/v1beta4`):
 * `InitConfiguration` + `ClusterConfiguration` for the first control-plane
 * node, a control-plane `JoinConfiguration` for the other control-plane nodes
 * and a worker `JoinConfiguration` for the rest. Secrets (bootstrap token,
 * certificate key, the cluster CA) are inputs, never generated here. Same
 * inputs, same bytes. Source: kubernetes.io "kubeadm Configuration (v1beta4)",
 * "Creating Highly Available Clusters with kubeadm" (stacked etcd, `--upload-certs`).
 */
import { X509Certificate, createHash } from "node:crypto";
import { stringify } from "yaml";
import type { HostModel, SiteModel } from "../model/model";
import {
  BOOTSTRAP_TOKEN_PATTERN,
  BOOTSTRAP_TOKEN_TTL,
  CERTIFICATE_KEY_PATTERN,
  CLUSTER_DNS_DOMAIN,
  CRI_SOCKET,
  KUBEADM_API_VERSION,
  KUBERNETES_PATHS,
  KUBERNETES_PORTS,
  KUBERNETES_VERSION,
  POD_CIDR,
  SERVICE_CIDR,
} from "./constants";
import { validateKubeadmDocument } from "./kubeadm-schema";
import { apiEndpoint, apiVip, apiVipMechanism, clusterNodes, controlPlaneNodes, mgmtAddress, nodeAddress } from "./network";

/** The secrets a cluster is bootstrapped with; the stack generates them (`ClusterCredentials`). */
export interface ClusterBootstrapValues {
  /** The join token, `[a-z0-9]{6}.[a-z0-9]{16}` (kubernetes.io "Authenticating with Bootstrap Tokens"). */
  readonly bootstrapToken: string;
  /** Encrypts the control-plane certificates kubeadm uploads for joining control-plane nodes: 64 hex digits (32 bytes). */
  readonly certificateKey: string;
  /**
   * The cluster CA: certificate and private key in PEM. Laid down on the first node before
   * `kubeadm init` (kubeadm uses a CA it finds, "Certificate Management with kubeadm"), so the
   * joining nodes can pin its public key (`caCertHashes`) instead of trusting the first answer.
   */
  readonly ca: { readonly certPem: string; readonly keyPem: string };
}

/** A node's part in the cluster. */
export type NodeRole = "init" | "join-control-plane" | "join-worker";

/** The role of each virtualization host: the first control-plane node inits, the others join. */
export function nodeRole(model: SiteModel, host: HostModel): NodeRole {
  const controlPlane = controlPlaneNodes(model);
  if (controlPlane[0]?.name === host.name) return "init";
  return controlPlane.some((h) => h.name === host.name) ? "join-control-plane" : "join-worker";
}

/**
 * The CA pin joining nodes check during discovery: `sha256:` and the hex SHA-256 of the
 * CA certificate's DER SubjectPublicKeyInfo (kubeadm `discovery.bootstrapToken.caCertHashes`).
 */
export function caCertHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/** Throws naming each bootstrap value that has the wrong shape (values are never shown). */
export function checkBootstrapValues(model: SiteModel, values: ClusterBootstrapValues): void {
  const problems: string[] = [];
  if (!BOOTSTRAP_TOKEN_PATTERN.test(values.bootstrapToken)) problems.push("bootstrapToken must be [a-z0-9]{6}.[a-z0-9]{16}");
  if (!CERTIFICATE_KEY_PATTERN.test(values.certificateKey)) problems.push("certificateKey must be 64 lower-case hex digits (32 bytes)");
  try {
    const cert = new X509Certificate(values.ca.certPem);
    if (!cert.ca) problems.push("ca.certPem is not a CA certificate");
  } catch {
    problems.push("ca.certPem is not a PEM certificate");
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(values.ca.keyPem)) problems.push("ca.keyPem is not a PEM private key");
  if (problems.length > 0) throw new Error(`${model.name}: Kubernetes bootstrap values: ${problems.join("; ")}`);
}

/** `nodeRegistration` of a node: its name, containerd, the app address for the kubelet. */
function nodeRegistration(host: HostModel, role: NodeRole, kubeVip: boolean): Record<string, unknown> {
  return {
    name: host.name,
    criSocket: CRI_SOCKET,
    // Control-plane nodes run workloads too: a site has three to a handful of virtualization hosts.
    ...(role === "join-worker" ? {} : { taints: [] }),
    kubeletExtraArgs: [{ name: "node-ip", value: nodeAddress(host) }],
    // kube-vip's static pod must be in place before init (it holds the endpoint init talks to),
    // and init's preflight wants the manifest folder empty.
    ...(role === "init" && kubeVip ? { ignorePreflightErrors: ["DirAvailable--etc-kubernetes-manifests"] } : {}),
  };
}

/** The kubeadm documents of one node, as objects (what the YAML file holds, in order). */
export function kubeadmDocuments(model: SiteModel, host: HostModel, values: ClusterBootstrapValues): Record<string, unknown>[] {
  const role = nodeRole(model, host);
  const kubeVip = apiVipMechanism(model) === "kube-vip-arp";
  const localAPIEndpoint = { advertiseAddress: nodeAddress(host), bindPort: KUBERNETES_PORTS.apiServer };
  if (role === "init") {
    const controlPlane = controlPlaneNodes(model);
    const sans = [
      apiVip(model),
      ...controlPlane.map((h) => nodeAddress(h)),
      ...controlPlane.map((h) => mgmtAddress(h)).filter((a): a is string => !!a),
    ];
    return [
      {
        apiVersion: KUBEADM_API_VERSION,
        kind: "InitConfiguration",
        bootstrapTokens: [
          {
            token: values.bootstrapToken,
            description: `standort: joins the virtualization hosts of ${model.name}`,
            ttl: BOOTSTRAP_TOKEN_TTL,
            usages: ["signing", "authentication"],
            groups: ["system:bootstrappers:kubeadm:default-node-token"],
          },
        ],
        nodeRegistration: nodeRegistration(host, role, kubeVip),
        localAPIEndpoint,
        certificateKey: values.certificateKey,
      },
      {
        apiVersion: KUBEADM_API_VERSION,
        kind: "ClusterConfiguration",
        clusterName: model.name,
        kubernetesVersion: KUBERNETES_VERSION,
        controlPlaneEndpoint: apiEndpoint(model),
        // The CA the stack generates is ECDSA P-256; the cluster's other keys follow it.
        encryptionAlgorithm: "ECDSA-P256",
        certificatesDir: "/etc/kubernetes/pki",
        networking: { podSubnet: POD_CIDR, serviceSubnet: SERVICE_CIDR, dnsDomain: CLUSTER_DNS_DOMAIN },
        // Operators reach the API on the nodes' mgmt addresses (zone rule mgmt-to-kubernetes-api).
        apiServer: { certSANs: [...new Set(sans)] },
        etcd: { local: { dataDir: "/var/lib/etcd" } },
      },
    ];
  }
  return [
    {
      apiVersion: KUBEADM_API_VERSION,
      kind: "JoinConfiguration",
      nodeRegistration: nodeRegistration(host, role, kubeVip),
      caCertPath: KUBERNETES_PATHS.caCert,
      discovery: {
        bootstrapToken: {
          token: values.bootstrapToken,
          apiServerEndpoint: apiEndpoint(model),
          caCertHashes: [caCertHash(values.ca.certPem)],
        },
      },
      ...(role === "join-control-plane" ? { controlPlane: { localAPIEndpoint, certificateKey: values.certificateKey } } : {}),
    },
  ];
}

/**
 * The kubeadm configuration file of a node: its documents as YAML, separated by `---`,
 * after a header naming the host. Throws when a document breaks the kubeadm schema
 * (`validateKubeadmDocument`), naming each field, so a file kubeadm would refuse is never written.
 */
export function renderKubeadmConfig(model: SiteModel, host: HostModel, values: ClusterBootstrapValues): string {
  const docs = kubeadmDocuments(model, host, values);
  const problems = docs.flatMap(validateKubeadmDocument);
  if (problems.length > 0) throw new Error(`${model.name}: ${host.name}: kubeadm configuration: ${problems.join("; ")}`);
  const header = `# standort: kubeadm configuration of ${host.name} (${model.name}, ${nodeRole(model, host)}). Rendered from ${model.file}; do not edit.\n`;
  return header + docs.map((d) => `---\n${stringify(d, { lineWidth: 0 })}`).join("");
}

/** The virtualization hosts by role, for messages and plans. */
export function clusterLayout(model: SiteModel): { init: string; controlPlane: string[]; workers: string[] } {
  const nodes = clusterNodes(model);
  const controlPlane = controlPlaneNodes(model).map((h) => h.name);
  return { init: controlPlane[0], controlPlane, workers: nodes.map((h) => h.name).filter((n) => !controlPlane.includes(n)) };
}
