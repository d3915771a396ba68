/**
 * The Kubernetes runtime of a site, as files for its virtualization hosts and
 * objects for its cluster. `kubernetesHostFiles` is what delivery ships to each
 * host; `clusterManifests` and `serviceObjects` are what the Workloads component
 * creates through `@pulumi/kubernetes`. Compose sites get nothing from here.
 * Pure: no Pulumi, no I/O.
 */
import type { SiteModel } from "../model/model";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";
import { derivedCertificate, derivedEcdsaKey } from "../footprint/credentials";
import { stringify } from "yaml";
import { BOOTSTRAP_UNIT, KUBERNETES_PATHS } from "./constants";
import {
  BOOTSTRAP_RELOAD,
  renderBootstrapScript,
  renderBootstrapUnit,
  renderContainerdConfig,
  renderKubernetesSysctl,
  renderModulesLoad,
} from "./bootstrap";
import { ClusterBootstrapValues, checkBootstrapValues, nodeRole, renderKubeadmConfig } from "./kubeadm";
import { KubernetesObject, kubeVipManifest } from "./manifests";
import { apiVipMechanism, assertClusterNetworks, clusterNodes, runsKubernetes } from "./network";
import { validateManifest } from "./validate";

export * from "./constants";
export { apiEndpoint, apiVip, apiVipMechanism, clusterNetworkProblems, clusterNodes, controlPlaneNodes, runsKubernetes } from "./network";
export { ClusterBootstrapValues, caCertHash, clusterLayout, kubeadmDocuments, nodeRole, renderKubeadmConfig } from "./kubeadm";
export { clusterManifests, flannelManifests, ingressManifests, kubeVipManifest, KubernetesObject } from "./manifests";
export { ServiceObjects, nfsServer, placeholderServiceSecrets, serviceObjects, serviceSecretData } from "./workloads";
export { validateManifest, validateManifests } from "./validate";
export { validateKubeadmDocument } from "./kubeadm-schema";

/** A static pod manifest as the kubelet reads it (YAML), after proving it against the Pod schema. */
function staticPodYaml(model: SiteModel, host: string, pod: KubernetesObject): string {
  const problems = validateManifest(pod);
  if (problems.length > 0) throw new Error(`${model.name}: ${host}: ${problems.join("; ")}`);
  return `# standort: static pod of ${host} (${model.name}). Rendered from ${model.file}; do not edit.\n${stringify(pod, { lineWidth: 0 })}`;
}

/**
 * Every file the Kubernetes runtime puts on each virtualization host, by host name, in
 * delivery order: kernel modules and settings, containerd's configuration, on the first
 * control-plane node the cluster CA, on kube-vip sites' control-plane nodes kube-vip's
 * static pod, the bootstrap script, the kubeadm configuration (secret, 0600: it carries
 * the token and the certificate key) and the bootstrap unit, whose reload starts it.
 * `{}` for a compose site. Throws when the bootstrap values have the wrong shape, when a
 * kubeadm document or a static pod breaks its schema, or when the cluster's ranges overlap
 * a site of `sites` (every site model).
 */
export function kubernetesHostFiles(
  model: SiteModel,
  sites: ReadonlyArray<SiteModel>,
  values: ClusterBootstrapValues,
): Record<string, RenderedFile[]> {
  if (!runsKubernetes(model)) return {};
  assertClusterNetworks(sites);
  checkBootstrapValues(model, values);
  const kubeVip = apiVipMechanism(model) === "kube-vip-arp";
  const files: Record<string, RenderedFile[]> = {};
  for (const host of clusterNodes(model)) {
    const role = nodeRole(model, host);
    const plain = (path: string, content: string, mode = "0644"): RenderedFile => ({ path, content, mode, secret: false, delivery: "ssh" });
    const list: RenderedFile[] = [
      { ...plain(KUBERNETES_PATHS.modules, renderModulesLoad(model, host)), reload: ["modprobe", "-a", "overlay", "br_netfilter"] },
      { ...plain(KUBERNETES_PATHS.sysctl, renderKubernetesSysctl(model, host)), reload: ["sysctl", "-p", KUBERNETES_PATHS.sysctl] },
      {
        ...plain(KUBERNETES_PATHS.containerdConfig, renderContainerdConfig(model, host)),
        check: { command: ["containerd", "--config", FILE_PLACEHOLDER, "config", "dump"] },
        reload: ["systemctl", "restart", "containerd"],
        healthCheck: ["systemctl", "is-active", "--quiet", "containerd"],
      },
    ];
    if (role === "init") {
      list.push(plain(KUBERNETES_PATHS.caCert, values.ca.certPem.endsWith("\n") ? values.ca.certPem : `${values.ca.certPem}\n`));
      list.push({
        path: KUBERNETES_PATHS.caKey,
        content: values.ca.keyPem.endsWith("\n") ? values.ca.keyPem : `${values.ca.keyPem}\n`,
        mode: "0600",
        secret: true,
        delivery: "ssh",
      });
      if (kubeVip)
        list.push(
          plain(
            KUBERNETES_PATHS.kubeVipInitManifest,
            staticPodYaml(model, host.name, kubeVipManifest(model, KUBERNETES_PATHS.superAdminConf)),
          ),
        );
    }
    if (kubeVip && role !== "join-worker")
      list.push(plain(KUBERNETES_PATHS.kubeVipManifest, staticPodYaml(model, host.name, kubeVipManifest(model))));
    list.push(
      {
        ...plain(KUBERNETES_PATHS.bootstrapScript, renderBootstrapScript(model, host), "0755"),
        check: { command: ["sh", "-n", FILE_PLACEHOLDER] },
      },
      {
        path: KUBERNETES_PATHS.kubeadmConfig,
        content: renderKubeadmConfig(model, host, values),
        mode: "0600",
        secret: true,
        delivery: "ssh",
        // kubeadm's own check of the file (`kubeadm config validate`, kubeadm 1.27+).
        check: { command: ["kubeadm", "config", "validate", "--config", FILE_PLACEHOLDER] },
        // A new token or key reaches the first node's cluster on its next run.
        reload: BOOTSTRAP_RELOAD,
      },
      {
        ...plain(KUBERNETES_PATHS.bootstrapUnit, renderBootstrapUnit(model, host)),
        reload: BOOTSTRAP_RELOAD,
        remove: ["systemctl", "disable", BOOTSTRAP_UNIT],
      },
    );
    files[host.name] = list;
  }
  return files;
}

/**
 * Bootstrap values for plans and checks: a working token, key and CA derived from the site's
 * name, so the rendered files have the real shape (a CA whose hash the join configurations
 * pin). Never deployed: the stack passes the values `ClusterCredentials` generates.
 */
export function placeholderBootstrapValues(model: SiteModel): ClusterBootstrapValues {
  const key = derivedEcdsaKey(`kubernetes-ca:${model.name}`);
  const certPem = derivedCertificate({ subjectKeyPem: key.privateKeyPem, commonName: "kubernetes", ca: true });
  return { bootstrapToken: "abcdef.0123456789abcdef", certificateKey: "0".repeat(64), ca: { certPem, keyPem: key.privateKeyPem } };
}
