/**
 * What turns a virtualization host into a cluster node: the bootstrap script
 * and its systemd oneshot unit (`kubeadm init` once on the first control-plane
 * node, `kubeadm join` once on the others), containerd's configuration for the
 * kubelet, and the kernel settings Kubernetes needs. Pure text.
 */
import type { HostModel, SiteModel } from "../model/model";
import { BOOTSTRAP_UNIT, KUBERNETES_PATHS, PAUSE_IMAGE } from "./constants";
import { NodeRole, nodeRole } from "./kubeadm";
import { apiEndpoint, apiVipMechanism } from "./network";

/** Seconds a joining node waits for the control-plane endpoint before it fails (and systemd retries). */
export const JOIN_WAIT_SECONDS = 600;
/** Seconds between two looks at the endpoint while waiting. */
export const JOIN_POLL_SECONDS = 10;

/**
 * The bootstrap script of one node (POSIX sh; `sh -n` clean). Idempotent:
 * - first control-plane node: `kubeadm init --upload-certs --config <file>` only when
 *   `/etc/kubernetes/admin.conf` is absent, this host never completed an init (marker file),
 *   and nothing answers on the control-plane endpoint (another member still serving would
 *   mean a second cluster). Once initialised, each run re-creates the bootstrap token and
 *   re-uploads the control-plane certificates (kubeadm deletes them after two hours), so a
 *   node can join later.
 * - other nodes: `kubeadm join --config <file>` only when `/etc/kubernetes/kubelet.conf` is
 *   absent, after the endpoint answers (up to `JOIN_WAIT_SECONDS`).
 * On kube-vip sites the control-plane nodes put kube-vip's static pod in place (the first
 * node its super-admin variant while init runs). `STANDORT_ROOT` prefixes every path the
 * script itself reads or writes (tests run it in a scratch folder); on a host it is unset.
 */
export function renderBootstrapScript(model: SiteModel, host: HostModel): string {
  const role: NodeRole = nodeRole(model, host);
  const kubeVip = apiVipMechanism(model) === "kube-vip-arp" && role !== "join-worker";
  const p = KUBERNETES_PATHS;
  const lines = [
    "#!/bin/sh",
    `# standort: Kubernetes bootstrap of ${host.name} (${model.name}, ${role}). Rendered from ${model.file}; do not edit.`,
    "# Forms the site's cluster (kubeadm init, once, on the first control-plane node) or joins it (kubeadm join, once).",
    "# Safe to run again: a node of the cluster only keeps the join material current.",
    "set -eu",
    "",
    `ROLE=${role}`,
    `ENDPOINT=${apiEndpoint(model)}`,
    `KUBE_VIP=${kubeVip ? "yes" : "no"}`,
    'ROOT="${STANDORT_ROOT:-}"',
    `CONFIG="$ROOT${p.kubeadmConfig}"`,
    `ADMIN="$ROOT${p.adminConf}"`,
    `KUBELET="$ROOT${p.kubeletConf}"`,
    `MARKER="$ROOT${p.initialisedMarker}"`,
    `VIP_POD="$ROOT${p.kubeVipManifest}"`,
    `VIP_INIT_POD="$ROOT${p.kubeVipInitManifest}"`,
    `VIP_TARGET="$ROOT${p.staticPods}/kube-vip.yaml"`,
    `JOIN_WAIT_SECONDS=${JOIN_WAIT_SECONDS}`,
    "",
    "log() { printf 'standort-kubernetes: %s\\n' \"$*\" >&2; }",
    "",
    "# Something answers HTTPS on the control-plane endpoint: any HTTP status (401, 403 too) means an API is up.",
    "api_answers() {",
    "\tcode=$(curl --silent --insecure --output /dev/null --max-time 5 --write-out '%{http_code}' \"https://$ENDPOINT/livez\" || true)",
    '\t[ -n "$code" ] && [ "$code" != "000" ]',
    "}",
    "",
    "# kube-vip's static pod from the given manifest (the kubelet starts or updates it).",
    "install_kube_vip() {",
    '\t[ "$KUBE_VIP" = yes ] || return 0',
    '\tmkdir -p "$(dirname "$VIP_TARGET")"',
    '\tcp "$1" "$VIP_TARGET.tmp"',
    '\tmv "$VIP_TARGET.tmp" "$VIP_TARGET"',
    "}",
    "",
    'case "$ROLE" in',
    "init)",
    '\tif [ -e "$ADMIN" ]; then',
    '\t\tlog "the cluster exists ($ADMIN): no kubeadm init; keeping the bootstrap token and the uploaded certificates current"',
    '\t\tinstall_kube_vip "$VIP_POD"',
    '\t\tkubeadm token create --config "$CONFIG" >/dev/null 2>&1 || log "the bootstrap token was not created (it exists already)"',
    '\t\tkubeadm init phase upload-certs --upload-certs --config "$CONFIG" >/dev/null',
    "\t\texit 0",
    "\tfi",
    '\tif [ -e "$MARKER" ]; then',
    '\t\tlog "kubeadm init completed here before ($MARKER) but $ADMIN is gone: refusing a second init; restore admin.conf, or run kubeadm reset and remove the marker by hand"',
    "\t\texit 1",
    "\tfi",
    "\tif api_answers; then",
    '\t\tlog "the API at $ENDPOINT answers: the cluster exists elsewhere; refusing kubeadm init (join this host as a control-plane node instead)"',
    "\t\texit 1",
    "\tfi",
    '\tinstall_kube_vip "$VIP_INIT_POD"',
    '\tkubeadm init --upload-certs --config "$CONFIG"',
    '\tmkdir -p "$(dirname "$MARKER")"',
    '\t: >"$MARKER"',
    '\tinstall_kube_vip "$VIP_POD"',
    '\tlog "cluster formed; control-plane endpoint $ENDPOINT"',
    "\t;;",
    "join-control-plane | join-worker)",
    '\tif [ -e "$KUBELET" ]; then',
    '\t\tlog "already a node of the cluster ($KUBELET): no kubeadm join"',
    '\t\tinstall_kube_vip "$VIP_POD"',
    "\t\texit 0",
    "\tfi",
    "\twaited=0",
    "\tuntil api_answers; do",
    '\t\tif [ "$waited" -ge "$JOIN_WAIT_SECONDS" ]; then',
    '\t\t\tlog "the API at $ENDPOINT did not answer within $JOIN_WAIT_SECONDS s: not joining yet"',
    "\t\t\texit 1",
    "\t\tfi",
    `\t\tsleep ${JOIN_POLL_SECONDS}`,
    `\t\twaited=$((waited + ${JOIN_POLL_SECONDS}))`,
    "\tdone",
    '\tkubeadm join --config "$CONFIG"',
    '\tinstall_kube_vip "$VIP_POD"',
    '\tlog "joined the cluster at $ENDPOINT as $ROLE"',
    "\t;;",
    "*)",
    '\tlog "unknown role $ROLE"',
    "\texit 2",
    "\t;;",
    "esac",
    "",
  ];
  return lines.join("\n");
}

/**
 * The oneshot unit that runs the bootstrap script at boot and after delivery. It retries a
 * failed run every 30 s (a joining node waits for the first), and never runs twice at once.
 */
export function renderBootstrapUnit(model: SiteModel, host: HostModel): string {
  return [
    `# standort: Kubernetes bootstrap of ${host.name} (${model.name}). Rendered from ${model.file}; do not edit.`,
    "[Unit]",
    `Description=standort: form or join the Kubernetes cluster of ${model.name} (kubeadm)`,
    "Documentation=https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/high-availability/",
    "Wants=network-online.target",
    "After=network-online.target containerd.service",
    "Requires=containerd.service",
    `ConditionPathExists=${KUBERNETES_PATHS.kubeadmConfig}`,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    // Through sh: the unit verifies (systemd-analyze) on a machine without the script, and runs it whatever its mode.
    `ExecStart=/bin/sh ${KUBERNETES_PATHS.bootstrapScript}`,
    "Restart=on-failure",
    "RestartSec=30s",
    // kubeadm init pulls images and waits for the control plane: minutes, not seconds.
    "TimeoutStartSec=30min",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * Reads the unit (delivery swaps files without `daemon-reload`), then starts it, or runs it
 * again when it has finished (the first node then renews the token and the certificates);
 * never interrupts a run in progress.
 */
export const BOOTSTRAP_RELOAD: ReadonlyArray<string> = [
  "sh",
  "-c",
  `systemctl daemon-reload && systemctl enable --quiet ${BOOTSTRAP_UNIT} && if [ "$(systemctl is-active ${BOOTSTRAP_UNIT} || true)" != activating ]; then systemctl restart --no-block ${BOOTSTRAP_UNIT}; fi`,
];

/**
 * containerd's configuration for the kubelet (config version 2, read by containerd 1.6 and
 * 1.7): the systemd cgroup driver, which kubeadm configures the kubelet with (kubernetes.io
 * "Container Runtimes", containerd), and the pause image kubeadm expects.
 */
export function renderContainerdConfig(model: SiteModel, host: HostModel): string {
  return [
    `# standort: containerd of ${host.name} (${model.name}). Rendered; do not edit.`,
    "version = 2",
    "",
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    "",
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '  runtime_type = "io.containerd.runc.v2"',
    "",
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    "  SystemdCgroup = true",
    "",
  ].join("\n");
}

/** Kernel modules the pod network needs at boot: overlay (containerd's snapshotter), br_netfilter (bridged pod traffic through netfilter). */
export function renderModulesLoad(model: SiteModel, host: HostModel): string {
  return [
    `# standort: kernel modules of ${host.name} (${model.name}) for Kubernetes. Rendered; do not edit.`,
    "overlay",
    "br_netfilter",
    "",
  ].join("\n");
}

/**
 * Kernel settings kubeadm's preflight demands (kubernetes.io "Container Runtimes",
 * "Forwarding IPv4 and letting iptables see bridged traffic"): forwarding on (pods are
 * routed through the host), and bridged traffic through iptables (kube-proxy's Service NAT).
 * Sorts after the host's own 90-standort.conf, which leaves forwarding to the runtime.
 */
export function renderKubernetesSysctl(model: SiteModel, host: HostModel): string {
  return [
    `# standort: kernel settings of ${host.name} (${model.name}) for Kubernetes. Rendered; do not edit.`,
    "net.ipv4.ip_forward = 1",
    "net.bridge.bridge-nf-call-iptables = 1",
    "net.bridge.bridge-nf-call-ip6tables = 1",
    "",
  ].join("\n");
}
