/**
 * The cluster's place in a site's network, each fact derived by one function:
 * which hosts run the control plane, the API's VIP in the app segment, how the
 * VIP reaches its holder, and the proof that the cluster's own ranges collide
 * with no site. Pure.
 */
import type { HostModel, SiteModel } from "../model/model";
import { adapterOf } from "../providers/registry";
import { cidr, formatAddress, hostAddress, overlaps } from "../net/ipv4";
import { API_VIP_HOST_NUMBERS, CONTROL_PLANE_SIZE, KUBERNETES_PORTS, POD_CIDR, SERVICE_CIDR } from "./constants";

/** The segment the cluster lives in: node addresses, the API VIP, pod traffic (VXLAN) and the ingress ports. */
export const CLUSTER_SEGMENT = "app";

/** True when the site runs its containers on Kubernetes (`roles.virtualization.runtime`). */
export function runsKubernetes(model: SiteModel): boolean {
  return model.virtualization.runtime === "kubernetes";
}

/** The site's virtualization hosts by ordinal: the cluster's nodes. */
export function clusterNodes(model: SiteModel): HostModel[] {
  return model.hosts.filter((h) => h.role === "virtualization").sort((a, b) => a.ordinal - b.ordinal);
}

/**
 * The control-plane nodes: the first `CONTROL_PLANE_SIZE` (3) virtualization hosts by
 * ordinal where the site has three or more, else the first one alone (two etcd members
 * tolerate no loss and fail with either). The first of them runs `kubeadm init`.
 */
export function controlPlaneNodes(model: SiteModel): HostModel[] {
  const nodes = clusterNodes(model);
  return nodes.slice(0, nodes.length >= CONTROL_PLANE_SIZE ? CONTROL_PLANE_SIZE : 1);
}

/** A node's address in the app segment; throws when the model gives it none (a model that skipped validation). */
export function nodeAddress(host: HostModel): string {
  const address = host.interfaces.find((i) => i.segment === CLUSTER_SEGMENT)?.address;
  if (!address) throw new Error(`${host.name} has no address in the ${CLUSTER_SEGMENT} segment`);
  return address;
}

/** A node's address in mgmt, where the zone policy lets operators reach the API (`mgmt-to-kubernetes-api`). */
export function mgmtAddress(host: HostModel): string | undefined {
  return host.interfaces.find((i) => i.segment === "mgmt")?.address;
}

/**
 * The control plane's VIP (`controlPlaneEndpoint`): the lowest host number from
 * `API_VIP_HOST_NUMBERS` (6–9) of the app segment that no host interface, pair VIP or
 * gateway of the site uses. Same model, same address. Throws, naming the segment and the
 * holders, when all four are taken.
 */
export function apiVip(model: SiteModel): string {
  const segment = model.segments.find((s) => s.name === CLUSTER_SEGMENT);
  if (!segment) throw new Error(`${model.name}: no ${CLUSTER_SEGMENT} segment for the Kubernetes API VIP`);
  const taken = new Map<string, string>();
  if (segment.gateway) taken.set(segment.gateway, "the gateway");
  for (const pair of model.pairs) for (const vip of pair.vips) taken.set(vip.address, `the ${pair.role} pair's VIP`);
  for (const host of model.hosts) for (const i of host.interfaces) taken.set(i.address, host.name);
  const block = cidr(segment.cidr);
  for (let n = API_VIP_HOST_NUMBERS.first; n <= API_VIP_HOST_NUMBERS.last; n++) {
    const address = formatAddress(hostAddress(block, n));
    if (!taken.has(address)) return address;
  }
  const holders = [...taken.entries()].map(([a, who]) => `${a} (${who})`).join(", ");
  throw new Error(
    `${model.name}: no free address for the Kubernetes API VIP in ${CLUSTER_SEGMENT} (${segment.cidr}) host numbers ${API_VIP_HOST_NUMBERS.first}-${API_VIP_HOST_NUMBERS.last}: taken are ${holders}`,
  );
}

/** `controlPlaneEndpoint` as kubeadm takes it: `<vip>:6443`. */
export function apiEndpoint(model: SiteModel): string {
  return `${apiVip(model)}:${KUBERNETES_PORTS.apiServer}`;
}

/**
 * How the API VIP reaches the control-plane node that holds it:
 * - `kube-vip-arp` on pre-provisioned hosts, whose segments are VLANs: kube-vip (a static
 *   pod on each control-plane node) claims the VIP by leader election and announces it by ARP.
 * - `provider-load-balancer` on Hetzner Cloud: its networks are routed, an address reaches a
 *   server only as an alias IP set through the API, and gratuitous ARP moves nothing. A
 *   Hetzner Cloud load balancer attached to the network with the VIP as its private address
 *   forwards 6443 to the control-plane nodes (the provisioning adapter creates it).
 */
export function apiVipMechanism(model: SiteModel): "kube-vip-arp" | "provider-load-balancer" {
  return adapterOf(model).internalAddress;
}

/** One problem of the cluster ranges: the site file, the range and what it overlaps. */
export interface ClusterNetworkProblem {
  readonly file: string;
  readonly range: string;
  readonly message: string;
}

/**
 * Proves that the pod and service ranges overlap each other not, nor any site's
 * supernet, own public prefix or management allowlist (every site: sites are meshed, and
 * a pod reaching a partner's database must not find the partner's address inside its own
 * cluster). Returns one problem per overlap, each naming the site file, the field and both
 * ranges; empty when the ranges are clear. `ranges` defaults to the constants.
 */
export function clusterNetworkProblems(
  sites: ReadonlyArray<SiteModel>,
  ranges: { readonly pods: string; readonly services: string } = { pods: POD_CIDR, services: SERVICE_CIDR },
): ClusterNetworkProblem[] {
  const problems: ClusterNetworkProblem[] = [];
  const named = [
    { name: "pod range", value: ranges.pods },
    { name: "service range", value: ranges.services },
  ];
  if (overlaps(cidr(ranges.pods), cidr(ranges.services)))
    problems.push({
      file: "lib/kubernetes/constants.ts",
      range: ranges.pods,
      message: `the pod range ${ranges.pods} overlaps the service range ${ranges.services}`,
    });
  for (const site of [...sites].sort((a, b) => a.name.localeCompare(b.name))) {
    const theirs = [
      { field: "network.supernet", value: site.supernet },
      ...(site.public.mode === "own-prefix" ? [{ field: "public.prefix", value: site.public.prefix }] : []),
      ...site.management.allowlist.map((value, i) => ({ field: `management.allowlist[${i}]`, value })),
    ];
    for (const range of named)
      for (const their of theirs)
        if (overlaps(cidr(range.value), cidr(their.value)))
          problems.push({
            file: site.file,
            range: range.value,
            message: `${their.field}: ${their.value} overlaps the Kubernetes ${range.name} ${range.value}: pods could not reach it; pick another range in lib/kubernetes/constants.ts or another address for the site`,
          });
  }
  return problems;
}

/** Throws one error listing every problem of `clusterNetworkProblems` (`<file>: <message>` per line). */
export function assertClusterNetworks(sites: ReadonlyArray<SiteModel>): void {
  const problems = clusterNetworkProblems(sites);
  if (problems.length > 0) throw new Error(problems.map((p) => `${p.file}: ${p.message}`).join("\n"));
}
