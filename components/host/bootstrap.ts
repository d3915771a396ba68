/**
 * What every host needs from the operating system up, by role: packages and
 * services for time sync, packet filter, node monitoring and the role's own
 * daemons. Pure data built on the renderer's package list, so the two agree.
 */
import { stringify } from "yaml";
import { HostModel, SiteModel } from "../../lib/model/model";
import { Role } from "../../lib/model/schema";
import { packagesFor } from "../../lib/render/cloudinit";

/** Where node monitoring listens (Prometheus node exporter's standard port). */
export const NODE_EXPORTER_PORT = 9100;

/** The apt repository Kubernetes packages come from (Debian does not ship kubeadm/kubelet). */
export const KUBERNETES_APT_REPOSITORY = "https://pkgs.k8s.io/core:/stable:/v1.31/deb/";

export interface Bootstrap {
  /** Debian packages from the distribution's own repositories. */
  readonly packages: ReadonlyArray<string>;
  /** Packages from an extra repository, by repository URL. */
  readonly extraPackages: Readonly<Record<string, ReadonlyArray<string>>>;
  /** systemd units enabled at boot. */
  readonly services: ReadonlyArray<string>;
  /** NTP sources; the same list on every host of the site, so pair members keep identical time. */
  readonly timeServers: ReadonlyArray<string>;
  readonly monitoring: { readonly exporter: string; readonly port: number };
  /** The container runtime of a virtualization host. */
  readonly runtime?: SiteModel["virtualization"]["runtime"];
}

/** Every host also runs node monitoring. */
const MONITORING = { package: "prometheus-node-exporter", service: "prometheus-node-exporter" };

/**
 * What a role needs beyond the renderer's package list (`packagesFor`): the
 * tools other parts of the library drive on it.
 */
const EXTRA_PACKAGES: Record<Role, string[]> = {
  // Site-to-site tunnels (lib/footprint/wireguard).
  firewall: ["wireguard-tools"],
  proxy: [],
  // Replication (rsync over SSH) and backups (restic) of lib/footprint/jobs.
  storage: ["rsync", "restic"],
  // Mounts the storage pair's NFS export.
  virtualization: ["nfs-common"],
};

function roleServices(role: Role, model: SiteModel): string[] {
  switch (role) {
    case "firewall":
      return ["keepalived", ...(model.public.mode === "own-prefix" && model.public.routing.kind === "bgp" ? ["bird"] : [])];
    case "proxy":
      return ["haproxy", "keepalived"];
    case "storage":
      return ["keepalived", "nfs-server"];
    case "virtualization":
      return model.virtualization.runtime === "kubernetes" ? ["containerd", "kubelet"] : ["docker"];
  }
}

/** The bootstrap of a role at a site: the renderer's packages plus monitoring and the role's tools. */
export function bootstrapFor(role: Role, model: SiteModel): Bootstrap {
  const kubernetes = role === "virtualization" && model.virtualization.runtime === "kubernetes";
  return {
    packages: [...new Set([...packagesFor(model, role), MONITORING.package, ...EXTRA_PACKAGES[role]])].sort(),
    services: ["chrony", "nftables", MONITORING.service, ...roleServices(role, model)],
    extraPackages: kubernetes ? { [KUBERNETES_APT_REPOSITORY]: ["kubeadm", "kubelet", "kubectl"] } : {},
    timeServers: [...model.time.servers],
    monitoring: { exporter: MONITORING.package, port: NODE_EXPORTER_PORT },
    ...(role === "virtualization" ? { runtime: model.virtualization.runtime } : {}),
  };
}

/**
 * The minimal first-boot user data of an API-created host, until the
 * rendered cloud-init takes its place: host name, no password logins, the
 * distribution packages of its bootstrap. Built from data, never by hand.
 */
export function defaultUserData(host: HostModel, bootstrap: Bootstrap): string {
  const config = {
    hostname: host.name,
    preserve_hostname: false,
    ssh_pwauth: false,
    package_update: true,
    packages: [...bootstrap.packages],
  };
  return `#cloud-config\n${stringify(config)}`;
}
