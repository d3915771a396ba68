/**
 * The Kubernetes runtime's fixed facts, named once: versions, images, ports,
 * address ranges, paths and class names. Every renderer, builder, check and
 * test reads them from here. Pure data.
 */

/**
 * The Kubernetes release the sites run (`ClusterConfiguration.kubernetesVersion`),
 * and the Debian package version of kubeadm, kubelet and kubectl from the
 * community repository `pkgs.k8s.io/core:/stable:/v1.35/deb/` (packages are
 * named `<version>-<revision>`, revision 1.1 for the first build). Source:
 * kubernetes.io "Installing kubeadm" and the v1.35 CHANGELOG.
 */
export const KUBERNETES_VERSION = "v1.35.2";
export const KUBERNETES_PACKAGE_VERSION = "1.35.2-1.1";
/** The pkgs.k8s.io repository of the minor release (one repository per minor, kubernetes.io "Installing kubeadm"). */
export const KUBERNETES_APT_REPOSITORY = "https://pkgs.k8s.io/core:/stable:/v1.35/deb/";

/** The kubeadm configuration API the renderers write: current since kubeadm 1.31 (v1beta3 is deprecated, "removed in 1.34 or later"). */
export const KUBEADM_API_VERSION = "kubeadm.k8s.io/v1beta4";

/**
 * Ports of the cluster, from kubernetes.io "Ports and Protocols" (control plane:
 * API 6443, etcd 2379–2380, kubelet 10250, kube-scheduler 10259, kube-controller-manager 10257;
 * workers: kubelet 10250, kube-proxy 10256, NodePorts 30000–32767).
 */
export const KUBERNETES_PORTS = {
  apiServer: 6443,
  etcdClient: 2379,
  etcdPeer: 2380,
  kubelet: 10250,
  kubeScheduler: 10259,
  kubeControllerManager: 10257,
  kubeProxyHealth: 10256,
} as const;

/**
 * Flannel's VXLAN port (UDP): the Linux kernel's default VXLAN port, which flannel
 * uses unless `Backend.Port` says otherwise (flannel `Documentation/backends.md`).
 * Set explicitly so the packet filter and the CNI configuration name the same port.
 */
export const FLANNEL_VXLAN_PORT = 8472;

/**
 * The address ranges inside every cluster. They never leave a host unmasqueraded
 * (flannel `--ip-masq`, kube-proxy's service NAT), but a site or a partner site
 * whose addresses overlapped them would be unreachable from pods: the check
 * `clusterNetworkProblems` proves they overlap no site's supernet, own prefix or
 * management allowlist. The pod range is flannel's documented default (kube-flannel.yml
 * `net-conf.json`), the service range a /16 inside kubeadm's default 10.96.0.0/12.
 */
export const POD_CIDR = "10.244.0.0/16";
export const SERVICE_CIDR = "10.96.0.0/16";
/** Cluster DNS domain (kubeadm's default `networking.dnsDomain`). */
export const CLUSTER_DNS_DOMAIN = "cluster.local";

/**
 * How many control-plane nodes a site runs where it has enough virtualization hosts:
 * etcd needs a majority, so three members survive the loss of one, and a fourth adds
 * a failure point without adding tolerance (etcd FAQ "Why an odd number of cluster members?").
 * A site with fewer than three hosts runs one control-plane node.
 */
export const CONTROL_PLANE_SIZE = 3;

/**
 * Where the API VIP may sit in the app segment: host numbers 6 to 9, between the
 * pairs' VIPs (1–5) and the first proxies (10), so no role's planned address can take it.
 */
export const API_VIP_HOST_NUMBERS = { first: 6, last: 9 } as const;

/**
 * Container images, each pinned by digest (the tag is for people; the digest is what
 * containerd pulls). Digests as published by the projects' registries and recorded
 * by Renovate in public repositories; check them with `crane digest <image:tag>` when bumping.
 */
export const KUBERNETES_IMAGES = {
  /** flannel's daemon (github.com/flannel-io/flannel releases). */
  flannel: "ghcr.io/flannel-io/flannel:v0.28.1@sha256:6a9c170acece4457ccb9cdfe53c787cc451e87990e20451bf20070b8895fa538",
  /** flannel's CNI plugin binary, copied to /opt/cni/bin by an init container. */
  flannelCniPlugin:
    "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.0-flannel1@sha256:c6a08fe5bcb23b19c2fc7c1e47b95a967cc924224ebedf94e8623f27b6c258fa",
  /** kube-vip, the control-plane VIP by ARP (kube-vip.io, "Static Pods"). */
  kubeVip: "ghcr.io/kube-vip/kube-vip:v1.0.4@sha256:5e0d817bfa35f922e7ca5cf5fa88f30b71a88ab4837e550185b1c97bcef818c2",
  /**
   * Traefik, the ingress controller (its Kubernetes Ingress provider). Chosen over
   * ingress-nginx, which Kubernetes SIG Network retired in March 2026.
   */
  traefik: "docker.io/library/traefik:v3.6.2@sha256:c025135278d10f0fb6e54cb2b2dbadb3c3f0381a2c508cd74c06a74cb5a0e828",
} as const;

/** The pause image kubeadm 1.35 expects (`kubeadm config images list`); containerd's sandbox image. */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1";

/** containerd's CRI socket (kubeadm `nodeRegistration.criSocket`). */
export const CRI_SOCKET = "unix:///run/containerd/containerd.sock";

/** The two ingress classes: one per access mode, each served by its own controller on its own host port. */
export const INGRESS_CLASSES = { readWrite: "standort-rw", readOnly: "standort-ro" } as const;
/** The controller name every IngressClass of Traefik's Ingress provider carries (doc.traefik.io, "Kubernetes Ingress"). */
export const TRAEFIK_CONTROLLER = "traefik.io/ingress-controller";
/**
 * Each Traefik instance's internal entry point (`traefik`, for its own health), on loopback
 * only and one per instance: both run in the host's network namespace, and Traefik's
 * default :8080 would let them collide.
 */
export const INGRESS_ADMIN_PORTS = { readWrite: 9000, readOnly: 9001 } as const;
/** The port each workload Service exposes inside the cluster (the ingress's upstream). */
export const SERVICE_PORT = 80;

/** Namespaces of the cluster-wide pieces. */
export const NAMESPACES = { flannel: "kube-flannel", ingress: "standort-ingress" } as const;

/** Files on the hosts. */
export const KUBERNETES_PATHS = {
  /** The kubeadm configuration of the host (secret: it carries the bootstrap token and the certificate key). */
  kubeadmConfig: "/etc/standort/kubernetes/kubeadm.yaml",
  /** kube-vip's static pod as delivered; the bootstrap script puts it into the kubelet's manifest folder. */
  kubeVipManifest: "/etc/standort/kubernetes/kube-vip.yaml",
  /** The same pod reading super-admin.conf, which the first node runs while `kubeadm init` binds admin.conf's rights. */
  kubeVipInitManifest: "/etc/standort/kubernetes/kube-vip-init.yaml",
  /** The kubelet's static pod folder (kubeadm's default). */
  staticPods: "/etc/kubernetes/manifests",
  /** The cluster CA the stack generates, laid down before `kubeadm init` so that kubeadm uses it. */
  caCert: "/etc/kubernetes/pki/ca.crt",
  caKey: "/etc/kubernetes/pki/ca.key",
  /** Written by `kubeadm init` on the first control-plane node. */
  adminConf: "/etc/kubernetes/admin.conf",
  /** Written by `kubeadm init` (1.29+): the break-glass credential kube-vip needs until RBAC exists. */
  superAdminConf: "/etc/kubernetes/super-admin.conf",
  /** Written by `kubeadm join` (and init) once the kubelet is part of the cluster. */
  kubeletConf: "/etc/kubernetes/kubelet.conf",
  /** Marks a host on which `kubeadm init` succeeded once: never run it there again. */
  initialisedMarker: "/var/lib/standort/kubernetes/initialised",
  bootstrapScript: "/usr/local/lib/standort/kubernetes-bootstrap",
  bootstrapUnit: "/etc/systemd/system/standort-kubernetes-bootstrap.service",
  containerdConfig: "/etc/containerd/config.toml",
  sysctl: "/etc/sysctl.d/91-standort-kubernetes.conf",
  modules: "/etc/modules-load.d/standort-kubernetes.conf",
} as const;

/** The bootstrap unit's name. */
export const BOOTSTRAP_UNIT = "standort-kubernetes-bootstrap.service";

/** Bootstrap tokens live this long (kubeadm's default, `bootstrapTokens[].ttl`); the first node re-creates its token on every run. */
export const BOOTSTRAP_TOKEN_TTL = "24h0m0s";
/** A bootstrap token: `[a-z0-9]{6}.[a-z0-9]{16}` (kubernetes.io "Authenticating with Bootstrap Tokens"). */
export const BOOTSTRAP_TOKEN_PATTERN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
/** kubeadm's certificate key: hex of a 32-byte AES key (kubeadm v1beta4 `InitConfiguration.certificateKey`). */
export const CERTIFICATE_KEY_PATTERN = /^[a-f0-9]{64}$/;
