// Every Kubernetes object the stack creates or a host runs (CNI, ingress controllers, kube-vip's static
// pod, the services' objects), validated offline against the Kubernetes OpenAPI schemas with unknown
// fields refused; and the validator shown to reject a broken object of each kind of fault.
import test from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { loadFootprint } from "../lib/footprint/load";
import { siteServices } from "../lib/footprint/services";
import { INGRESS_PORTS } from "../lib/footprint/site-files";
import {
  FLANNEL_VXLAN_PORT,
  INGRESS_CLASSES,
  KUBERNETES_PATHS,
  KubernetesObject,
  POD_CIDR,
  apiVip,
  clusterManifests,
  kubeVipManifest,
  kubernetesHostFiles,
  placeholderBootstrapValues,
  placeholderServiceSecrets,
  serviceObjects,
  validateManifest,
  validateManifests,
} from "../lib/kubernetes";

const { footprint, sites } = loadFootprint();
const site = (name: string) => sites.find((s) => s.name === name)!;

/** Every object of a site: cluster add-ons, kube-vip (where it runs) and the services' objects. */
function siteObjects(name: string): KubernetesObject[] {
  const model = site(name);
  const services = serviceObjects(model, siteServices(footprint, sites, name), footprint, placeholderServiceSecrets(footprint));
  return [
    ...clusterManifests(),
    ...services.flatMap((s) => [
      s.namespace,
      ...(s.secret ? [s.secret] : []),
      ...s.instances.flatMap((i) => [i.deployment, i.service, i.ingress]),
    ]),
  ];
}

const pinned = /^[a-z0-9.-]+(\/[a-z0-9._-]+)+:[A-Za-z0-9._-]+@sha256:[a-f0-9]{64}$/;

test("frankfurt's and helsinki's objects and static pods pass the Kubernetes schemas, unknown fields refused", () => {
  for (const name of ["frankfurt", "helsinki"]) {
    const objects = siteObjects(name);
    assert.deepEqual(validateManifests(objects), [], name);
    // The kube-vip pods as delivered (the YAML the kubelet reads), both variants.
    const files = Object.values(kubernetesHostFiles(site(name), sites, placeholderBootstrapValues(site(name)))).flat();
    const pods = files.filter((f) => f.path.startsWith("/etc/standort/kubernetes/kube-vip")).map((f) => parse(f.content));
    assert.equal(pods.length, name === "frankfurt" ? 4 : 0, name);
    assert.deepEqual(validateManifests(pods), [], name);
    const kinds = [...new Set(objects.map((o) => `${o.apiVersion}/${o.kind}`))].sort();
    assert.deepEqual(kinds, [
      "apps/v1/DaemonSet",
      "apps/v1/Deployment",
      "networking.k8s.io/v1/Ingress",
      "networking.k8s.io/v1/IngressClass",
      "rbac.authorization.k8s.io/v1/ClusterRole",
      "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
      "v1/ConfigMap",
      "v1/Namespace",
      "v1/Secret",
      "v1/Service",
      "v1/ServiceAccount",
    ]);
  }
});

test("the validator rejects an unknown field, a wrong type and a missing required field, naming the field", () => {
  const [groupware] = siteObjects("frankfurt").filter((o) => o.kind === "Deployment" && o.metadata.name === "groupware");
  const unknown = structuredClone(groupware) as any;
  unknown.spec.template.spec.containers[0].imagePullPolicyy = "Always";
  assert.deepEqual(validateManifest(unknown), [
    "Deployment groupware/groupware: /spec/template/spec/containers/0/imagePullPolicyy: unknown field (not in the Kubernetes 1.33 schema of apps/v1/Deployment)",
  ]);
  const wrongType = structuredClone(groupware) as any;
  wrongType.spec.replicas = "3";
  assert.deepEqual(validateManifest(wrongType), ["Deployment groupware/groupware: /spec/replicas: must be integer"]);
  const missing = structuredClone(groupware) as any;
  delete missing.spec.template.spec.containers[0].name;
  assert.deepEqual(validateManifest(missing), ["Deployment groupware/groupware: /spec/template/spec/containers/0/name: is required"]);

  // The same three faults in the CNI's DaemonSet, an Ingress and the static pod.
  const flannel = structuredClone(clusterManifests().find((o) => o.kind === "DaemonSet" && o.metadata.name === "kube-flannel-ds")) as any;
  flannel.spec.template.spec.hostNetwrok = true;
  assert.match(
    validateManifest(flannel).join("\n"),
    /^DaemonSet kube-flannel\/kube-flannel-ds: \/spec\/template\/spec\/hostNetwrok: unknown field/,
  );
  const ingress = structuredClone(siteObjects("helsinki").find((o) => o.kind === "Ingress")) as any;
  ingress.spec.rules[0].http.paths[0].pathType = 1;
  assert.match(validateManifest(ingress).join("\n"), /\/spec\/rules\/0\/http\/paths\/0\/pathType: must be string/);
  const pod = structuredClone(kubeVipManifest(site("frankfurt"))) as any;
  delete pod.spec.containers;
  assert.deepEqual(validateManifest(pod), ["Pod kube-system/kube-vip: /spec/containers: is required"]);
  // Maps (labels, ConfigMap data) take any key; a kind without a schema here is one problem, not a pass.
  const labelled = structuredClone(groupware) as any;
  labelled.metadata.labels["example.com/anything"] = "x";
  assert.deepEqual(validateManifest(labelled), []);
  assert.match(validateManifest({ apiVersion: "v1", kind: "Pdo", metadata: { name: "x" } }).join(), /v1\/Pdo has no schema here/);
});

test("the ingress controllers listen in the host's network on 8443 (rw) and 8444 (ro), one IngressClass each", () => {
  const objects = clusterManifests();
  const controllers = objects.filter((o) => o.kind === "DaemonSet" && (o.metadata.namespace as string) === "standort-ingress") as any[];
  assert.deepEqual(
    controllers.map((d) => [d.metadata.name, d.spec.template.spec.hostNetwork, d.spec.template.spec.containers[0].ports[0].containerPort]),
    [
      ["ingress-rw", true, INGRESS_PORTS.readWrite],
      ["ingress-ro", true, INGRESS_PORTS.readOnly],
    ],
  );
  for (const d of controllers) {
    const args: string[] = d.spec.template.spec.containers[0].args;
    const port = d.spec.template.spec.containers[0].ports[0].containerPort;
    assert.ok(args.includes(`--entryPoints.websecure.address=:${port}`));
    const cls = port === INGRESS_PORTS.readWrite ? INGRESS_CLASSES.readWrite : INGRESS_CLASSES.readOnly;
    assert.ok(args.includes(`--providers.kubernetesingress.ingressClass=${cls}`), cls);
  }
  assert.deepEqual(
    objects.filter((o) => o.kind === "IngressClass").map((o) => o.metadata.name),
    [INGRESS_CLASSES.readWrite, INGRESS_CLASSES.readOnly],
  );
  // No hostPort anywhere: a DNATed port would be dropped by the hosts' forward filter.
  assert.ok(!JSON.stringify([...objects, ...siteObjects("frankfurt")]).includes("hostPort"));
});

test("flannel runs VXLAN on the named port over the app interface with the pod range; images are pinned by digest", () => {
  const config = clusterManifests().find((o) => o.kind === "ConfigMap") as any;
  assert.deepEqual(JSON.parse(config.data["net-conf.json"]), {
    Network: POD_CIDR,
    EnableNFTables: false,
    Backend: { Type: "vxlan", Port: FLANNEL_VXLAN_PORT },
  });
  const flannel = clusterManifests().find((o) => o.metadata.name === "kube-flannel-ds") as any;
  assert.ok(flannel.spec.template.spec.containers[0].args.includes("--iface=app"));
  const images = [
    ...[...clusterManifests(), kubeVipManifest(site("frankfurt"))].flatMap((o: any) => {
      const spec = o.kind === "Pod" ? o.spec : o.spec?.template?.spec;
      return spec ? [...(spec.initContainers ?? []), ...spec.containers].map((c: any) => c.image as string) : [];
    }),
  ];
  assert.equal(images.length, 6);
  for (const image of images) assert.match(image, pinned, image);
});

test("kube-vip holds the API VIP by ARP on the app interface; the first node's variant reads super-admin.conf", () => {
  const model = site("frankfurt");
  const pod = kubeVipManifest(model) as any;
  const env = Object.fromEntries(pod.spec.containers[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
  assert.equal(env.vip_nodename, "spec.nodeName");
  assert.equal(env.address, apiVip(model));
  assert.equal(env.vip_arp, "true");
  assert.equal(env.vip_interface, "app");
  assert.equal(env.cp_enable, "true");
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.volumes[0].hostPath.path, KUBERNETES_PATHS.adminConf);
  assert.equal(
    (kubeVipManifest(model, KUBERNETES_PATHS.superAdminConf) as any).spec.volumes[0].hostPath.path,
    KUBERNETES_PATHS.superAdminConf,
  );
});
