/**
 * cloud-init user-data for API-provisioned (Hetzner Cloud) hosts: root's SSH
 * key, the role's packages, and the host's rendered files.
 *
 * Files that carry secrets are left out on purpose: user-data stays readable
 * from the metadata service by any process on the server for its lifetime.
 * Delivery over SSH ships them (and every later change) right after creation.
 */
import { adapterOf } from "../providers/registry";
import { KUBERNETES_APT_REPOSITORY, KUBERNETES_PACKAGE_VERSION } from "../kubernetes/constants";
import { gzipSync } from "node:zlib";
import { Document } from "yaml";
import { z } from "zod";
import type { SiteModel } from "../model/model";
import type { Role } from "../model/schema";
import { ProblemCollector } from "./errors";
import { checkHost } from "./interfaces";
import type { RenderedFile, RenderOptions } from "./types";

/** Where cloud-init writes the first-boot archive (a shell script that writes each file). */
export const FIRST_BOOT_ARCHIVE = "/var/lib/standort/first-boot.sh";
const ARCHIVE_EOF = "STANDORT_FIRST_BOOT_EOF";

/**
 * The first-boot files as one POSIX shell script: each file written through a
 * quoted here-document, then its mode and owner set. Pure and deterministic.
 * @throws Error when a file holds the here-document's delimiter line (no rendered file does)
 */
export function firstBootArchive(hostName: string, files: ReadonlyArray<RenderedFile>): string {
  const lines = [`#!/bin/sh`, `# standort: first-boot files of ${hostName}, unpacked once by cloud-init's runcmd.`, "set -eu", "umask 022"];
  for (const f of files) {
    if (f.content.split("\n").includes(ARCHIVE_EOF)) throw new Error(`${f.path} holds the line ${ARCHIVE_EOF}`);
    const dir = f.path.replace(/\/[^/]+$/, "") || "/";
    lines.push(
      `mkdir -p '${dir}'`,
      `cat > '${f.path}' <<'${ARCHIVE_EOF}'`,
      f.content.replace(/\n$/, ""),
      ARCHIVE_EOF,
      `chmod ${f.mode} '${f.path}' && chown ${f.owner ?? "root:root"} '${f.path}'`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Hetzner Cloud accepts at most 32 KiB of user-data. */
export const HCLOUD_USER_DATA_LIMIT = 32 * 1024;

const sshKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]*)?$/,
    "is not an OpenSSH public key (type, base64 key, optional comment on one line)",
  );

/** Packages each role needs; every host also gets the common ones. */
export function packagesFor(model: SiteModel, role: Role): string[] {
  // node exporter on every host: the site's Prometheus scrapes it, and the jobs' and pairs' textfiles ride on it.
  const common = ["chrony", "curl", "nftables", "prometheus-node-exporter"];
  // keepalived, its scripts (jq for the provider API, arping for the link checks) and the fence (ssh and its own sshd).
  const paired = ["iputils-arping", "jq", "keepalived", "openssh-client", "openssh-server"];
  const byRole: Record<Role, string[]> = {
    // The firewalls terminate the site-to-site WireGuard tunnels.
    firewall: [
      ...paired,
      // conntrackd keeps the pair's connection tracking in step (only a pair with a peer runs it).
      ...(model.pairs.some((p) => p.role === "firewall" && !p.dissolved) ? ["conntrackd"] : []),
      "wireguard-tools",
      ...(model.public.mode === "own-prefix" && model.public.routing.kind === "bgp" ? ["bird2", "prometheus-bird-exporter"] : []),
    ],
    // The authoritative name server (PowerDNS, its bind backend reads the rendered zone files).
    proxy: [...paired, "haproxy", "pdns-backend-bind", "pdns-server"],
    // The storage hosts run the replication (rsync over ssh) and backup (restic) timers.
    // lsyncd the continuous copy (its lua5.3 checks the configuration), the clients the backup dumps run.
    // python3 runs rrsync, the forced receive command's confinement (rsync only suggests it).
    // DRBD replicates the data volume; nfs-ganesha (VFS) exports it: the userspace server everywhere, because the
    // twin can run it where no kernel NFS server exists, and one server kind means the twin boots what runs here.
    storage: [
      ...paired,
      "drbd-utils",
      "lsyncd",
      "mariadb-client",
      "nfs-ganesha",
      "nfs-ganesha-vfs",
      "openssh-client",
      "postgresql-client",
      // The site's monitoring: Prometheus and Alertmanager on both members (lib/monitoring).
      "prometheus",
      "prometheus-alertmanager",
      "python3",
      "restic",
      "rsync",
    ],
    // Compose: the engine and Compose, the ingress (HAProxy, openssl for its fallback certificate), the NFS
    // client the volumes mount with. Kubernetes: the runtime, kubeadm, kubelet and kubectl pinned from pkgs.k8s.io
    // (`kubernetesAptSource`), the NFS client kubelet mounts with, and what kube-proxy and kubeadm's preflight need.
    virtualization:
      model.virtualization.runtime === "compose"
        ? ["docker-compose", "docker.io", "haproxy", "nfs-common", "openssl"]
        : ["conntrack", "containerd", "iptables", "nfs-common", ...KUBERNETES_PACKAGES.map((p) => `${p}=${KUBERNETES_PACKAGE_VERSION}`)],
  };
  return [...new Set([...common, ...byRole[role]])].sort();
}

/** The Kubernetes packages, pinned to one release and held (kubeadm upgrades are a deliberate operation). */
export const KUBERNETES_PACKAGES = ["kubeadm", "kubectl", "kubelet"] as const;

/**
 * The pkgs.k8s.io repository of the pinned minor release as a cloud-init apt source (cc_apt_configure): the
 * key by its fingerprint (the "isv:kubernetes" signing key pkgs.k8s.io publishes as `Release.key`), fetched from
 * a keyserver and bound to this source only (`signed-by`).
 */
export const KUBERNETES_APT_KEY_FINGERPRINT = "DE15B14486CD377B9E876E1A234654DA9A296436";
function kubernetesAptSource(): Record<string, unknown> {
  return {
    sources: {
      kubernetes: {
        source: `deb [signed-by=$KEY_FILE] ${KUBERNETES_APT_REPOSITORY} /`,
        keyid: KUBERNETES_APT_KEY_FINGERPRINT,
        keyserver: "keyserver.ubuntu.com",
      },
    },
  };
}

/**
 * Where each store keeps its own site's restic repositories, on its own disk (`LOCAL_BACKUP_ROOT` of
 * lib/footprint/schema: the render layer does not import the footprint); the partner's off-site copies live on
 * the replicated volume, whose folder the storage pair's failover script creates when it mounts it.
 */
const LOCAL_BACKUP_ROOT = "/var/lib/standort/backup";

/**
 * Renders `#cloud-config` user-data for a Hetzner Cloud host from the host's
 * other rendered files (`files`). Non-secret files travel as one compressed
 * archive (`firstBootArchive`, gz+b64) written after the packages are
 * installed (`defer: true`) and unpacked by the first runcmd, so a package's
 * default config never overwrites them; their reload commands run once after.
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderCloudInit(
  model: SiteModel,
  hostName: string,
  files: ReadonlyArray<RenderedFile>,
  options: RenderOptions = {},
): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  const adapter = adapterOf(model);
  if (!adapter.userData) {
    problems.add(
      "provider.kind",
      `${adapter.id} hosts are handed over running: cloud-init user-data is only for hosts the library creates`,
    );
  }
  const keys = options.sshAuthorizedKeys ?? [];
  if (keys.length === 0) problems.add("options.sshAuthorizedKeys", "must list at least one key: delivery logs in as root with it");
  keys.forEach((k, i) => problems.parse(sshKey, k, `options.sshAuthorizedKeys[${i}]`));
  problems.throwIfAny();

  const shipped = files.filter((f) => f.delivery === "ssh" && !f.secret);
  // Each reload once, in file order: kernel settings, interfaces, packet filter, daemons.
  // The archive first (written after the packages, so a package's default config never overwrites a file).
  const runcmd: string[][] = [["sh", FIRST_BOOT_ARCHIVE]];
  // The restic repositories' folder belongs to the backup user (sftp writes there as restic).
  if (host!.role === "storage") runcmd.push(["install", "-d", "-o", "restic", "-g", "restic", "-m", "0700", LOCAL_BACKUP_ROOT]);
  const kubernetes = host!.role === "virtualization" && model.virtualization.runtime === "kubernetes";
  if (kubernetes) runcmd.push(["apt-mark", "hold", ...KUBERNETES_PACKAGES]);
  const seen = new Set<string>();
  for (const file of shipped) {
    if (!file.reload) continue;
    const key = file.reload.join(" ");
    if (!seen.has(key)) runcmd.push([...file.reload]);
    seen.add(key);
  }
  const data = {
    hostname: hostName,
    preserve_hostname: false,
    disable_root: false,
    ssh_pwauth: false,
    users: [
      { name: "root", ssh_authorized_keys: [...keys] },
      // The stores' sftp-only backup user (its keys come with the credentials); no password, not a locked one.
      ...(host!.role === "storage"
        ? [
            {
              name: "restic",
              system: true,
              homedir: LOCAL_BACKUP_ROOT,
              shell: "/usr/sbin/nologin",
              lock_passwd: false,
              no_create_home: true,
            },
          ]
        : []),
    ],
    package_update: true,
    ...(kubernetes ? { apt: kubernetesAptSource() } : {}),
    packages: packagesFor(model, host!.role),
    // One compressed archive (cloud-init's `encoding: gz+b64`, cc_write_files) that runcmd unpacks: the
    // firewalls carry two networkd files per segment, and one plain write_files entry each would reach
    // Hetzner's 32 KiB user-data limit at about 19 segments, long before the 50 subnets a network holds.
    write_files: [
      {
        path: FIRST_BOOT_ARCHIVE,
        owner: "root:root",
        permissions: "0700",
        defer: true,
        encoding: "gz+b64",
        // Level 9, no name or time in the gzip header: same files, same bytes.
        content: gzipSync(Buffer.from(firstBootArchive(hostName, shipped), "utf8"), { level: 9 }).toString("base64"),
      },
    ],
    runcmd,
  };
  const doc = new Document(data);
  doc.commentBefore = ` standort: ${hostName} (${model.name}). Rendered from ${model.file}; do not edit.\n Files with secrets are not here: delivery ships them over SSH.`;
  const text = `#cloud-config\n${doc.toString({ blockQuote: "literal", lineWidth: 0 })}`;
  const size = Buffer.byteLength(text, "utf8");
  if (size > HCLOUD_USER_DATA_LIMIT) {
    problems.add("user-data", `${size} bytes exceed Hetzner Cloud's limit of ${HCLOUD_USER_DATA_LIMIT} bytes`);
    problems.throwIfAny();
  }
  return text;
}
