/**
 * The cluster-wide Kubernetes objects of a site, as plain JSON (what
 * `kubectl apply` would send): the CNI (flannel, VXLAN on the app segment),
 * the two ingress controllers (Traefik, read-write on the hosts' 8443 and
 * read-only on 8444), and kube-vip's static pod for the API VIP. Same model,
 * same objects. Pure; the Workloads component creates them through
 * `@pulumi/kubernetes`, the tests validate them offline.
 */
import type { SiteModel } from "../model/model";
import { INGRESS_PORTS } from "../footprint/site-files";
import { interfaceName } from "../render/interfaces";
import {
  FLANNEL_VXLAN_PORT,
  INGRESS_ADMIN_PORTS,
  INGRESS_CLASSES,
  KUBERNETES_IMAGES,
  KUBERNETES_PATHS,
  KUBERNETES_PORTS,
  NAMESPACES,
  POD_CIDR,
  TRAEFIK_CONTROLLER,
} from "./constants";
import { CLUSTER_SEGMENT, apiVip } from "./network";

/** A Kubernetes object as plain JSON. */
export type KubernetesObject = { readonly apiVersion: string; readonly kind: string; readonly metadata: Record<string, unknown> } & Record<
  string,
  unknown
>;

/** Labels every object standort creates carries. */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "standort" } as const;

/**
 * A namespace whose pods may use the host's network: the Pod Security "privileged"
 * level (kubernetes.io "Pod Security Standards": baseline forbids hostNetwork).
 */
function privilegedNamespace(name: string): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { ...MANAGED_BY, "pod-security.kubernetes.io/enforce": "privileged" } },
  };
}

/**
 * flannel (github.com/flannel-io/flannel, `Documentation/kube-flannel.yml`), reduced to
 * what the sites need: the node subnet manager of the Kubernetes API (`--kube-subnet-mgr`),
 * VXLAN on the app segment's interface (`--iface`: the hosts' default route leaves by the
 * uplink), pod traffic leaving the cluster masqueraded to the node's address (`--ip-masq`,
 * so the firewall and partner sites only ever see the app segment). The hosts' packet
 * filter already admits `cni0` and `flannel.1`.
 */
export function flannelManifests(): KubernetesObject[] {
  const namespace = NAMESPACES.flannel;
  const labels = { ...MANAGED_BY, "app.kubernetes.io/name": "flannel" };
  const netConf = { Network: POD_CIDR, EnableNFTables: false, Backend: { Type: "vxlan", Port: FLANNEL_VXLAN_PORT } };
  const cniConf = {
    name: "cbr0",
    cniVersion: "0.3.1",
    plugins: [
      { type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  return [
    privilegedNamespace(namespace),
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "flannel", namespace, labels } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "flannel", labels },
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "flannel", labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "flannel" },
      subjects: [{ kind: "ServiceAccount", name: "flannel", namespace }],
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "kube-flannel-cfg", namespace, labels },
      data: { "cni-conf.json": `${JSON.stringify(cniConf, null, 2)}\n`, "net-conf.json": `${JSON.stringify(netConf, null, 2)}\n` },
    },
    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "kube-flannel-ds", namespace, labels },
      spec: {
        selector: { matchLabels: { "app.kubernetes.io/name": "flannel" } },
        template: {
          metadata: { labels },
          spec: {
            hostNetwork: true,
            priorityClassName: "system-node-critical",
            serviceAccountName: "flannel",
            // Every node needs the network, control-plane nodes included.
            tolerations: [{ operator: "Exists", effect: "NoSchedule" }],
            initContainers: [
              {
                name: "install-cni-plugin",
                image: KUBERNETES_IMAGES.flannelCniPlugin,
                command: ["cp"],
                args: ["-f", "/flannel", "/opt/cni/bin/flannel"],
                volumeMounts: [{ name: "cni-plugin", mountPath: "/opt/cni/bin" }],
              },
              {
                name: "install-cni",
                image: KUBERNETES_IMAGES.flannel,
                command: ["cp"],
                args: ["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"],
                volumeMounts: [
                  { name: "cni", mountPath: "/etc/cni/net.d" },
                  { name: "flannel-cfg", mountPath: "/etc/kube-flannel/" },
                ],
              },
            ],
            containers: [
              {
                name: "kube-flannel",
                image: KUBERNETES_IMAGES.flannel,
                command: ["/opt/bin/flanneld"],
                args: ["--ip-masq", "--kube-subnet-mgr", `--iface=${interfaceName(CLUSTER_SEGMENT)}`],
                resources: { requests: { cpu: "100m", memory: "50Mi" } },
                securityContext: { privileged: false, capabilities: { add: ["NET_ADMIN", "NET_RAW"] } },
                env: [
                  { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                  { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                  { name: "EVENT_QUEUE_DEPTH", value: "5000" },
                ],
                volumeMounts: [
                  { name: "run", mountPath: "/run/flannel" },
                  { name: "flannel-cfg", mountPath: "/etc/kube-flannel/" },
                  { name: "xtables-lock", mountPath: "/run/xtables.lock" },
                ],
              },
            ],
            volumes: [
              { name: "run", hostPath: { path: "/run/flannel" } },
              { name: "cni-plugin", hostPath: { path: "/opt/cni/bin" } },
              { name: "cni", hostPath: { path: "/etc/cni/net.d" } },
              { name: "flannel-cfg", configMap: { name: "kube-flannel-cfg" } },
              { name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } },
            ],
          },
        },
      },
    },
  ];
}

/** The two access modes, with their class, host port and the controller's loopback admin port. */
export const INGRESS_MODES = [
  {
    mode: "read-write",
    suffix: "rw",
    ingressClass: INGRESS_CLASSES.readWrite,
    port: INGRESS_PORTS.readWrite,
    adminPort: INGRESS_ADMIN_PORTS.readWrite,
  },
  {
    mode: "read-only",
    suffix: "ro",
    ingressClass: INGRESS_CLASSES.readOnly,
    port: INGRESS_PORTS.readOnly,
    adminPort: INGRESS_ADMIN_PORTS.readOnly,
  },
] as const;

/**
 * The ingress controllers: one Traefik DaemonSet per access mode on every node, in the
 * host's network namespace (`hostNetwork: true`: a hostPort is DNATed and forwarded, which
 * the hosts' filter does not admit), listening on 8443 (IngressClass `standort-rw`) and
 * 8444 (`standort-ro`), the ports the proxies pass TLS to (`INGRESS_PORTS`). Each instance
 * serves only the Ingress objects of its class (`--providers.kubernetesingress.ingressClass`),
 * terminates TLS on its entry point and routes by host name (the SNI the proxies routed by)
 * to the service's Service. Traefik's Ingress provider RBAC from doc.traefik.io
 * ("Kubernetes Ingress", RBAC).
 */
export function ingressManifests(): KubernetesObject[] {
  const namespace = NAMESPACES.ingress;
  const labels = { ...MANAGED_BY, "app.kubernetes.io/name": "traefik" };
  const objects: KubernetesObject[] = [
    privilegedNamespace(namespace),
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "traefik", namespace, labels } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "standort-ingress", labels },
      rules: [
        { apiGroups: [""], resources: ["services", "secrets", "nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["ingresses", "ingressclasses"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["ingresses/status"], verbs: ["update"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "standort-ingress", labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "standort-ingress" },
      subjects: [{ kind: "ServiceAccount", name: "traefik", namespace }],
    },
  ];
  for (const m of INGRESS_MODES) {
    const instance = { ...labels, "app.kubernetes.io/instance": `ingress-${m.suffix}` };
    objects.push(
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "IngressClass",
        metadata: { name: m.ingressClass, labels },
        spec: { controller: TRAEFIK_CONTROLLER },
      },
      {
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        metadata: { name: `ingress-${m.suffix}`, namespace, labels: instance },
        spec: {
          selector: { matchLabels: { "app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": `ingress-${m.suffix}` } },
          template: {
            metadata: { labels: instance },
            spec: {
              hostNetwork: true,
              // With the host's network the pod still resolves cluster names (Service upstreams).
              dnsPolicy: "ClusterFirstWithHostNet",
              serviceAccountName: "traefik",
              tolerations: [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" }],
              containers: [
                {
                  name: "traefik",
                  image: KUBERNETES_IMAGES.traefik,
                  args: [
                    `--entryPoints.websecure.address=:${m.port}`,
                    "--entryPoints.websecure.http.tls=true",
                    `--entryPoints.traefik.address=127.0.0.1:${m.adminPort}`,
                    "--providers.kubernetesingress=true",
                    `--providers.kubernetesingress.ingressClass=${m.ingressClass}`,
                    "--global.checkNewVersion=false",
                    "--global.sendAnonymousUsage=false",
                    "--log.level=INFO",
                  ],
                  ports: [{ name: "websecure", containerPort: m.port, protocol: "TCP" }],
                  readinessProbe: { tcpSocket: { port: m.port }, periodSeconds: 5 },
                  livenessProbe: { tcpSocket: { port: m.port }, periodSeconds: 10, failureThreshold: 3 },
                  resources: { requests: { cpu: "100m", memory: "64Mi" } },
                  securityContext: {
                    runAsNonRoot: true,
                    runAsUser: 65532,
                    runAsGroup: 65532,
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ["ALL"] },
                  },
                },
              ],
            },
          },
        },
      },
    );
  }
  return objects;
}

/**
 * kube-vip's static pod (kube-vip.io "Static Pods", ARP mode): on every control-plane node
 * the kubelet runs it before the API exists; the members elect a leader through a Lease
 * (`plndr-cp-lock`), and the leader holds the API VIP on the app interface and announces it
 * by ARP. `kubeconfig` is the host path it authenticates with: `/etc/kubernetes/admin.conf`
 * normally; the bootstrap script swaps in `super-admin.conf` while `kubeadm init` runs on the
 * first node, where admin.conf has no rights until init binds them (kube-vip issue #684).
 */
export function kubeVipManifest(model: SiteModel, kubeconfig: string = KUBERNETES_PATHS.adminConf): KubernetesObject {
  const env: Record<string, string> = {
    address: apiVip(model),
    port: String(KUBERNETES_PORTS.apiServer),
    vip_arp: "true",
    vip_interface: interfaceName(CLUSTER_SEGMENT),
    vip_subnet: "32",
    cp_enable: "true",
    cp_namespace: "kube-system",
    svc_enable: "false",
    vip_leaderelection: "true",
    vip_leasename: "plndr-cp-lock",
    // Seconds: a dead leader's VIP moves within about five.
    vip_leaseduration: "5",
    vip_renewdeadline: "3",
    vip_retryperiod: "1",
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "kube-vip", namespace: "kube-system", labels: { ...MANAGED_BY, "app.kubernetes.io/name": "kube-vip" } },
    spec: {
      hostNetwork: true,
      // As kube-vip's generated manifest does: the name `kubernetes` resolves to the node itself.
      hostAliases: [{ ip: "127.0.0.1", hostnames: ["kubernetes"] }],
      containers: [
        {
          name: "kube-vip",
          image: KUBERNETES_IMAGES.kubeVip,
          imagePullPolicy: "IfNotPresent",
          args: ["manager"],
          env: [
            // The leader election's identity: the node's name.
            { name: "vip_nodename", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
            ...Object.keys(env).map((name) => ({ name, value: env[name] })),
          ],
          securityContext: { capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] } },
          volumeMounts: [{ name: "kubeconfig", mountPath: KUBERNETES_PATHS.adminConf }],
        },
      ],
      // `File`: kubeadm writes the kubeconfig before the kubelet starts this pod; never create an empty one,
      // which kubeadm would then refuse as a kubeconfig of another cluster.
      volumes: [{ name: "kubeconfig", hostPath: { path: kubeconfig, type: "File" } }],
    },
  };
}

/** The cluster-wide objects the Workloads component creates: CNI first, then the ingress controllers. */
export function clusterManifests(): KubernetesObject[] {
  return [...flannelManifests(), ...ingressManifests()];
}
