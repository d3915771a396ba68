/**
 * Every file a host needs, with how to check, reload and health-check it:
 * the one entry point for the plan CLI (`renderSiteFiles` +
 * `writeRenderedFiles`) and the delivery component (`renderHostFiles`).
 * Pure except `writeRenderedFiles`; never imports `@pulumi/pulumi`.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { SiteModel } from "../model/model";
import type { Role } from "../model/schema";
import { adapterOf } from "../providers/registry";
import { renderBirdConfig } from "./bird";
import { renderChronyConfig } from "./chrony";
import { renderCloudInit } from "./cloudinit";
import { CONNTRACKD_CONF, renderConntrackdConfig, runsConntrackd } from "./conntrackd";
import { DRAIN_NFT, DRAIN_TABLE, drainsConnections, renderDrainRuleset } from "./drain";
import { ProblemCollector, RenderInputError } from "./errors";
import { FENCED_COMMAND, FENCE_SSHD_CONFIG, FENCE_UNIT, FENCE_UNIT_FILE, renderFenceFiles, runsFence } from "./fence";
import { renderHaproxyConfig } from "./haproxy";
import { addressIn, checkHost, interfaceName } from "./interfaces";
import {
  FAILOVER_SCRIPT,
  KEEPALIVED_CONF,
  PROVIDER_ENV,
  failoverMove,
  fillsNatSource,
  renderFailoverScript,
  renderKeepalivedConfig,
  renderProviderEnv,
  runsKeepalived,
} from "./keepalived";
import { NETWORKD_DIR, renderNetworkdFiles, renderSysctlConfig } from "./networkd";
import { linkPrefixLength } from "./routing";
import { renderNftablesRuleset } from "./nftables";
import { HAPROXY_STATS_PORT } from "./policy";
import { ed25519KeyFromSeed } from "./sshkey";
import { nftablesAbsent, stampHaproxy, stampNftables } from "./stamp";
import {
  DATA_VOLUME_SCRIPT,
  DATA_VOLUME_UDEV_RULE,
  DATA_VOLUME_UNIT,
  DATA_VOLUME_UNIT_FILE,
  DRBD_RESOURCE,
  DRBD_RESOURCE_FILE,
  SPLIT_BRAIN_SCRIPT,
  holdsDataVolume,
  renderDataVolumeScript,
  renderDataVolumeUnit,
  renderDrbdResource,
  renderSplitBrainScript,
} from "./storage";
import { FILE_PLACEHOLDER, FenceKeys, HostFiles, RenderedFile, RenderOptions, RenderSecrets } from "./types";

export * from "./types";
export { RenderInputError, formatProblem } from "./errors";
export type { RenderProblem } from "./errors";
export { interfaceName, vlanId } from "./interfaces";
export { FIXED_VLAN_IDS, EXTRA_VLAN_BASE } from "../providers/vlans";
export { zonePolicy, partnerSites } from "./policy";
export type { Zone, ZoneRule, ZoneProtocol } from "./policy";
export { renderNftablesRuleset } from "./nftables";
export { renderHaproxyConfig, haproxyMaxconn, PEAK_CONCURRENT_CONNECTIONS, CONNECTION_HEADROOM } from "./haproxy";
export {
  renderKeepalivedConfig,
  renderFailoverScript,
  renderProviderEnv,
  failoverMove,
  failoverIpName,
  tokenVariable,
  runsKeepalived,
} from "./keepalived";
export { renderBirdConfig } from "./bird";
export { renderFenceFiles, runsFence } from "./fence";
export { renderConntrackdConfig, runsConntrackd, CONNTRACKD_CONF } from "./conntrackd";
export { renderDrainRuleset, drainsConnections, DRAIN_NFT } from "./drain";
export { renderChronyConfig } from "./chrony";
export { renderCloudInit, packagesFor, HCLOUD_USER_DATA_LIMIT } from "./cloudinit";
export { renderNetworkdFiles, renderSysctlConfig } from "./networkd";
export {
  renderDrbdResource,
  renderDataVolumeScript,
  renderDataVolumeUnit,
  renderSplitBrainScript,
  holdsDataVolume,
  DRBD_RESOURCE,
  DRBD_RESOURCE_FILE,
} from "./storage";
export { renderGaneshaConfig, ganeshaCheckCommand, GANESHA_CONF } from "./ganesha";

/** Where the cloud-init user-data of an API-provisioned host appears in a plan directory (never shipped over SSH). */
export const CLOUD_INIT_PATH = "/etc/standort/cloud-init.yaml";

/** True when a pair member's failover script calls the provider (API fence or an address move). */
export function callsProvider(model: SiteModel, role: Role): boolean {
  if (role === "virtualization") return false;
  return adapterOf(model).failover.apiFence || failoverMove(model, role).kind !== "none";
}

/** Files that go into cloud-init user data as well as being delivered. */
const FIRST_BOOT_FILE = /^\/etc\/(sysctl\.d\/|systemd\/network\/|chrony\/|nftables\.conf$)/;

/** Seconds within which a fresh SSH connection must confirm a new packet filter, or the host restores the old one. */
export const NFTABLES_CONFIRM_SECONDS = 120;

const systemdReload = (unit: string) => ["sh", "-c", `systemctl enable --quiet ${unit} && systemctl reload-or-restart ${unit}`];
const checkWith = (...argv: string[]) => ({ command: argv });
/**
 * keepalived is running and logged no configuration problem since the
 * transaction's reloads began (`STANDORT_TX_START`, set by apply.sh): on
 * SIGHUP it keeps running with what it could parse (keepalived(8)).
 */
const KEEPALIVED_HEALTH =
  'systemctl is-active --quiet keepalived && ! journalctl -q -o cat -u keepalived --since "@${STANDORT_TX_START:-0}" | grep -qiE "unknown keyword|configuration error|error in config|not a valid"';

/** How each fence file is checked and reloaded: sshd checks its configuration, the sshd reload starts the unit. */
function fenceHandling(path: string): Pick<RenderedFile, "check" | "reload" | "healthCheck"> {
  switch (path) {
    case FENCED_COMMAND:
      return { check: checkWith("sh", "-n", FILE_PLACEHOLDER) };
    case FENCE_UNIT_FILE:
      return { reload: ["systemctl", "daemon-reload"] };
    case FENCE_SSHD_CONFIG:
      return {
        // sshd -t needs a host key it can read and its privilege separation directory; the real key may not be there yet.
        check: checkWith(
          "sh",
          "-c",
          `d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f "$d/k" && mkdir -p /run/sshd && /usr/sbin/sshd -t -f "$1" -h "$d/k"; r=$?; rm -rf "$d"; exit $r`,
          "sshd-check",
          FILE_PLACEHOLDER,
        ),
        reload: systemdReload(FENCE_UNIT),
        healthCheck: ["systemctl", "is-active", "--quiet", FENCE_UNIT],
      };
    default:
      return {};
  }
}

/**
 * Renders every file of one host, in delivery order: kernel settings and
 * interfaces first (keepalived needs them), then the packet filter, the
 * daemons, and keepalived with its failover script last. For Hetzner Cloud
 * hosts the list ends with the cloud-init user-data (`delivery: "provision"`).
 * Throws `RenderInputError` with every problem of every renderer at once.
 */
export function renderHostFiles(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): RenderedFile[] {
  const pre = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, pre, options);
  pre.throwIfAny();
  const h = host!;
  const problems: RenderInputError[] = [];
  const attempt = <T>(render: () => T): T | undefined => {
    try {
      return render();
    } catch (error) {
      if (error instanceof RenderInputError) {
        problems.push(error);
        return undefined;
      }
      throw error;
    }
  };

  const files: RenderedFile[] = [];
  const add = (file: Omit<RenderedFile, "delivery" | "secret" | "content"> & { secret?: boolean }, content: string | undefined) => {
    if (content !== undefined) files.push({ delivery: "ssh", ...file, secret: file.secret ?? false, content });
  };

  add(
    { path: "/etc/sysctl.d/90-standort.conf", mode: "0644", reload: ["sysctl", "-p", "/etc/sysctl.d/90-standort.conf"] },
    attempt(() => renderSysctlConfig(model, hostName, options)),
  );

  const networkd = attempt(() => renderNetworkdFiles(model, hostName, options)) ?? [];
  for (const file of networkd) {
    const iface = h.interfaces.find((i) => file.name === `20-standort-${interfaceName(i.segment)}.network`);
    add(
      {
        path: `${NETWORKD_DIR}/${file.name}`,
        mode: "0644",
        // networkd may not run yet on a handed-over host (ifupdown images): start it, then load the files.
        reload: ["sh", "-c", "systemctl enable --now --quiet systemd-networkd && networkctl reload"],
        healthCheck: iface
          ? [
              "sh",
              "-c",
              `ip -4 -o addr show dev ${interfaceName(iface.segment)} | grep -qF ' ${iface.address}/${linkPrefixLength(model, iface.prefixLength)} '`,
            ]
          : undefined,
      },
      file.content,
    );
  }

  const ruleset = attempt(() => renderNftablesRuleset(model, hostName, options));
  // The loaded table carries the file's digest: the health check proves the kernel runs this file.
  const stampedRuleset = ruleset === undefined ? undefined : stampNftables(ruleset, "inet standort");
  add(
    {
      path: "/etc/nftables.conf",
      mode: "0644",
      check: checkWith("nft", "-c", "-f", FILE_PLACEHOLDER),
      // A Hetzner Cloud firewall's NAT map starts empty: the failover script fills it again where this member holds the address.
      reload: [
        "sh",
        "-c",
        `nft -f /etc/nftables.conf && systemctl enable --quiet nftables${fillsNatSource(model, hostName) ? ` && { [ ! -x ${FAILOVER_SCRIPT} ] || ${FAILOVER_SCRIPT} nat-source; }` : ""}`,
      ],
      healthCheck: stampedRuleset?.healthCheck,
      confirmWithinSeconds: NFTABLES_CONFIRM_SECONDS,
      absent: ruleset === undefined ? undefined : nftablesAbsent(ruleset),
    },
    stampedRuleset?.content,
  );

  add(
    {
      path: "/etc/chrony/chrony.conf",
      mode: "0644",
      check: checkWith("chronyd", "-p", "-f", FILE_PLACEHOLDER),
      reload: ["systemctl", "restart", "chrony"],
      healthCheck: ["systemctl", "is-active", "--quiet", "chrony"],
    },
    attempt(() => renderChronyConfig(model, hostName, options)),
  );

  if (h.role === "proxy") {
    const mgmt = addressIn(h, "mgmt");
    const config = attempt(() => renderHaproxyConfig(model, hostName, options));
    // The stats frontend answers the file's digest: only a new worker (every bind succeeded) can.
    const stamped = config === undefined ? undefined : stampHaproxy(config, `http://${mgmt}:${HAPROXY_STATS_PORT}`);
    add(
      {
        path: "/etc/haproxy/haproxy.cfg",
        mode: "0644",
        check: checkWith("haproxy", "-c", "-q", "-f", FILE_PLACEHOLDER),
        reload: systemdReload("haproxy"),
        healthCheck: stamped?.healthCheck,
      },
      stamped?.content,
    );
  }

  if (h.role === "firewall" && model.public.mode === "own-prefix" && model.public.routing.kind === "bgp") {
    add(
      {
        path: "/etc/bird/bird.conf",
        mode: "0640",
        owner: "root:bird",
        secret: true,
        check: checkWith("bird", "-p", "-c", FILE_PLACEHOLDER),
        reload: systemdReload("bird"),
        healthCheck: ["birdc", "show", "status"],
      },
      attempt(() => renderBirdConfig(model, hostName, secrets, options)),
    );
  }

  if (runsConntrackd(model, hostName)) {
    add(
      {
        path: CONNTRACKD_CONF,
        mode: "0644",
        // conntrackd has no configuration test mode: the twin runs the daemon from this file (and a test does).
        // Before keepalived, whose failover script commits conntrackd's cache on a takeover.
        reload: ["sh", "-c", "systemctl enable --quiet conntrackd && systemctl restart conntrackd"],
        healthCheck: ["conntrackd", "-C", CONNTRACKD_CONF, "-s", "runtime"],
      },
      attempt(() => renderConntrackdConfig(model, hostName, options)),
    );
  }

  // The storage pair's data volume (DRBD), before keepalived, whose failover script promotes and mounts it.
  if (holdsDataVolume(model, hostName)) {
    const udevRule = adapterOf(model).dataDisk.udevRule;
    if (udevRule) {
      add(
        {
          path: DATA_VOLUME_UDEV_RULE,
          mode: "0644",
          // The link appears for the attached volume at once, not only at the next boot.
          reload: ["sh", "-c", "udevadm control --reload && udevadm trigger --subsystem-match=block --action=change && udevadm settle"],
        },
        udevRule(model),
      );
    }
    add(
      {
        path: DRBD_RESOURCE_FILE,
        mode: "0644",
        // drbdadm reads the file on its own and validates every keyword; a host name it does not know is fine.
        check: checkWith("drbdadm", "-c", FILE_PLACEHOLDER, "dump", "all"),
        // A resource that is up takes the changes; one that is not yet up is the first-boot unit's to bring up.
        reload: ["sh", "-c", `if drbdadm status ${DRBD_RESOURCE} >/dev/null 2>&1; then drbdadm adjust ${DRBD_RESOURCE}; fi`],
      },
      attempt(() => renderDrbdResource(model, hostName, options)),
    );
    add(
      { path: DATA_VOLUME_SCRIPT, mode: "0755", check: checkWith("sh", "-n", FILE_PLACEHOLDER) },
      attempt(() => renderDataVolumeScript(model, hostName, options)),
    );
    add(
      {
        path: DATA_VOLUME_UNIT_FILE,
        mode: "0644",
        // --no-block: the first member waits for its peer, whose delivery may come after this one.
        reload: [
          "sh",
          "-c",
          `systemctl daemon-reload && systemctl enable --quiet ${DATA_VOLUME_UNIT} && systemctl start --no-block ${DATA_VOLUME_UNIT}`,
        ],
      },
      attempt(() => renderDataVolumeUnit(model, hostName, options)),
    );
    add(
      { path: SPLIT_BRAIN_SCRIPT, mode: "0755", check: checkWith("sh", "-n", FILE_PLACEHOLDER) },
      attempt(() => renderSplitBrainScript(model, hostName, options)),
    );
  }

  if (runsKeepalived(model, hostName)) {
    // The provider token goes only where the failover script calls the provider: an API fence (Hetzner
    // Cloud) or an address the pair moves. A pair that fences by command and moves nothing never sees it.
    if (callsProvider(model, h.role)) {
      add(
        { path: PROVIDER_ENV, mode: "0600", secret: true, check: checkWith("sh", "-n", FILE_PLACEHOLDER) },
        attempt(() => renderProviderEnv(model, hostName, secrets, options)),
      );
    }
    // The fence before the failover script that uses it; the sshd configuration last, its reload starts the unit.
    if (runsFence(model, hostName)) {
      for (const file of attempt(() => renderFenceFiles(model, hostName, secrets, options)) ?? []) {
        add({ path: file.path, mode: file.mode, secret: file.secret, ...fenceHandling(file.path) }, file.content);
      }
    }
    // The drain before the failover script that loads it; loading it again keeps what it remembers.
    if (drainsConnections(model, hostName)) {
      add(
        {
          path: DRAIN_NFT,
          mode: "0644",
          check: checkWith("nft", "-c", "-f", FILE_PLACEHOLDER),
          reload: ["nft", "-f", DRAIN_NFT],
          // Not stamped: the table is never recreated (it keeps what it remembers), so nft keeps its first comment.
          healthCheck: ["nft", "list", "table", "netdev", DRAIN_TABLE],
          absent: ["sh", "-c", `nft delete table netdev ${DRAIN_TABLE} 2>/dev/null; true`],
        },
        attempt(() => renderDrainRuleset(model, hostName, options)),
      );
    }
    add(
      { path: FAILOVER_SCRIPT, mode: "0755", check: checkWith("sh", "-n", FILE_PLACEHOLDER) },
      attempt(() => renderFailoverScript(model, hostName, secrets, options)),
    );
    add(
      {
        path: KEEPALIVED_CONF,
        // No secret in it: VRRPv3 has no authentication (the fence keys are files of their own).
        mode: "0644",
        check: checkWith("keepalived", "-t", "-f", FILE_PLACEHOLDER),
        reload: systemdReload("keepalived"),
        // keepalived keeps running on a configuration it could not fully read: its log since the reload must be clean.
        healthCheck: ["sh", "-c", KEEPALIVED_HEALTH],
      },
      attempt(() => renderKeepalivedConfig(model, hostName, secrets, options)),
    );
  }

  if (problems.length === 0 && adapterOf(model).userData) {
    // First boot needs only what depends on the host itself: its kernel settings, interfaces, time and
    // packet filter. Files that follow the rest of the site (the proxy's backends) arrive by delivery, so
    // growing the site never changes an existing server's user data.
    const firstBoot = files.filter((f) => FIRST_BOOT_FILE.test(f.path));
    const userData = attempt(() => renderCloudInit(model, hostName, firstBoot, options));
    if (userData !== undefined) {
      files.push({
        path: CLOUD_INIT_PATH,
        content: userData,
        mode: "0600",
        secret: false,
        delivery: "provision",
        check: checkWith("cloud-init", "schema", "--config-file", FILE_PLACEHOLDER),
      });
    }
  }
  if (problems.length > 0) {
    // One error with every problem, each line once (renderers share host checks).
    const seen = new Set<string>();
    throw new RenderInputError(
      problems
        .flatMap((e) => e.problems)
        .filter((p) => {
          const key = `${p.field}\u0000${p.rule}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        }),
    );
  }
  return files;
}

/** Renders every host of a site, in the model's host order. */
export function renderSiteFiles(model: SiteModel, secrets: RenderSecrets, options: RenderOptions = {}): HostFiles[] {
  return model.hosts.map((h) => ({ host: h.name, files: renderHostFiles(model, h.name, secrets, options) }));
}

/**
 * A member's fence keys for offline plans, derived from the site and host
 * names: working Ed25519 keys (the twin boots from offline plans), public
 * knowledge, never deployed (stacks generate them with `@pulumi/tls`).
 */
export function placeholderFenceKeys(site: string, host: string): FenceKeys {
  const hostKey = ed25519KeyFromSeed(`plan-only:${site}:${host}:fence-host-key`);
  const clientKey = ed25519KeyFromSeed(`plan-only:${site}:${host}:fence-client-key`);
  return {
    hostKey: hostKey.privateKeyOpenssh,
    hostKeyPublic: hostKey.publicKeyOpenssh,
    clientKey: clientKey.privateKeyOpenssh,
    clientKeyPublic: clientKey.publicKeyOpenssh,
  };
}

/**
 * Obviously fake secrets that pass validation, for offline plans and tests:
 * every pair, every BGP peer and the provider token get a placeholder.
 */
export function placeholderSecrets(model: SiteModel): RenderSecrets {
  const routing = model.public.mode === "own-prefix" ? model.public.routing : undefined;
  return {
    fence: Object.fromEntries(model.pairs.flatMap((p) => p.members).map((m) => [m, placeholderFenceKeys(model.name, m)])),
    bgp: routing?.kind === "bgp" ? Object.fromEntries(routing.peers.map((p) => [p.name, "plan-only-bgp-password"])) : undefined,
    providerApiToken: adapterOf(model).failover.tokenPlaceholder ?? "plan-only-provider-token",
  };
}

/** A syntactically valid, unusable SSH public key for offline plans of API-provisioned sites. */
export const PLACEHOLDER_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlanOnlyPlaceholderKeyNotUsable0000000000 plan-only";

/** Text that stands in for a secret file's content when `writeRenderedFiles` redacts. */
export const REDACTED = "# (content withheld: this file carries a secret)\n";

/**
 * Writes every file to `<dir>/<host>/<path>` (the path without its leading
 * slash) and returns the written paths relative to `dir`, sorted. With
 * `clean`, each host's folder is removed first, so the folder holds exactly
 * this render. With `redactSecrets`, secret files hold `REDACTED` instead of
 * their content (for plans that end up in version control).
 */
export function writeRenderedFiles(
  dir: string,
  filesByHost: ReadonlyArray<HostFiles>,
  options: { clean?: boolean; redactSecrets?: boolean } = {},
): string[] {
  const written: string[] = [];
  const hosts = [...filesByHost].sort((a, b) => a.host.localeCompare(b.host));
  for (const { host, files } of hosts) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(host)) throw new Error(`${host} is not a host name that can be a folder`);
    if (options.clean) rmSync(join(dir, host), { recursive: true, force: true });
    for (const file of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
      const relative = file.path.replace(/^\/+/, "");
      if (relative.split("/").some((part) => part === ".." || part === "")) throw new Error(`${file.path} is not a plain absolute path`);
      const target = join(dir, host, relative);
      mkdirSync(dirname(target), { recursive: true });
      const content = file.secret && options.redactSecrets ? REDACTED : file.content;
      writeFileSync(target, content);
      // The rendered mode, as delivery installs it (an executable failover script stays executable).
      chmodSync(target, parseInt(file.mode, 8));
      written.push(join(host, relative));
    }
  }
  return written.sort();
}
