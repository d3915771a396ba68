/**
 * The fence over mgmt: each pair member runs a second sshd of its own
 * (`standort-fence.service`) on its mgmt address only, port
 * `FENCE_SSH_PORT`, whose one authorised key is the peer's fence key and
 * whose one command powers this host off. The peer pins that sshd's host key.
 * Apart from the operators' sshd on 22 so that the fence key, which lives on
 * an internet-facing proxy or firewall, can do nothing else anywhere.
 *
 * Files (sshd_config(5), sshd(8) AUTHORIZED_KEYS and SSH_KNOWN_HOSTS formats):
 * the host key and the client key (0600, secret), authorized_keys,
 * known_hosts, the forced command, the unit and the sshd configuration.
 */
import { z } from "zod";
import type { PairModel, SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { checkHost, pairOf } from "./interfaces";
import { FENCE_SSH_PORT } from "./policy";
import type { RenderOptions, RenderSecrets } from "./types";

export const FENCE_DIR = "/etc/standort/fence";
export const FENCE_SSHD_CONFIG = `${FENCE_DIR}/sshd_config`;
export const FENCE_HOST_KEY = `${FENCE_DIR}/ssh_host_ed25519_key`;
export const FENCE_AUTHORIZED_KEYS = `${FENCE_DIR}/authorized_keys`;
export const FENCE_CLIENT_KEY = `${FENCE_DIR}/id_ed25519`;
export const FENCE_KNOWN_HOSTS = `${FENCE_DIR}/known_hosts`;
export const FENCED_COMMAND = "/usr/local/sbin/standort-fenced";
export const FENCE_UNIT = "standort-fence";
export const FENCE_UNIT_FILE = `/etc/systemd/system/${FENCE_UNIT}.service`;
/** What the forced command prints before the power goes: the fencer's proof that the peer is going off. */
export const FENCED_LINE = "powering off";

const privateKey = z
  .string()
  .regex(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n?$/, "must be an OpenSSH private key");
const publicKey = z.string().regex(/^ssh-ed25519 [A-Za-z0-9+/]+={0,3}( [^\n]*)?\n?$/, "must be an ssh-ed25519 public key");
const fenceKeys = z.strictObject({ hostKey: privateKey, hostKeyPublic: publicKey, clientKey: privateKey, clientKeyPublic: publicKey });

/** A fenced pair member and what the files need: its peer, both mgmt addresses, both members' keys. */
interface Fenced {
  readonly pair: PairModel;
  readonly self: string;
  readonly peer: string;
  readonly selfMgmt: string;
  readonly peerMgmt: string;
  readonly own: z.infer<typeof fenceKeys>;
  readonly peers: z.infer<typeof fenceKeys>;
}

/** True when the host has a peer to fence and be fenced by: a member of a pair that is not dissolved. */
export function runsFence(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair !== undefined && !pair.dissolved;
}

function check(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions): Fenced {
  const problems = new ProblemCollector(model.name, hostName);
  checkHost(model, hostName, problems, options);
  const pair = pairOf(model, hostName);
  if (!pair || pair.dissolved) problems.add("hostName", `${hostName} has no pair peer to fence`);
  problems.throwIfAny();
  const p = pair!;
  const peer = p.members.find((m) => m !== hostName)!;
  for (const m of p.members)
    if (!p.mgmt[m]) problems.add(`pairs.${p.name}.mgmt.${m}`, `${m} has no mgmt address: the fence and the second VRRP path use it`);
  const own = problems.parse(fenceKeys, secrets.fence?.[hostName], `secrets.fence.${hostName}`);
  const peers = problems.parse(fenceKeys, secrets.fence?.[peer], `secrets.fence.${peer}`);
  problems.throwIfAny();
  return { pair: p, self: hostName, peer, selfMgmt: p.mgmt[hostName], peerMgmt: p.mgmt[peer], own: own!, peers: peers! };
}

const publicOnly = (line: string) => line.trim().split(" ").slice(0, 2).join(" ");

/** One rendered fence file: path, mode, whether it is secret, content. */
export interface FenceFile {
  readonly path: string;
  readonly mode: string;
  readonly secret: boolean;
  readonly content: string;
}

/**
 * Renders the fence files of a pair member, in delivery order (keys and lists
 * before the unit, the sshd configuration last: its reload starts the unit).
 * Throws `RenderInputError` for a host without peer, without mgmt address or
 * with a missing or malformed key.
 */
export function renderFenceFiles(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): FenceFile[] {
  const f = check(model, hostName, secrets, options);
  const header = `# standort: the fence of ${f.self} (${f.pair.name}). Rendered from ${model.file}; do not edit.`;
  return [
    { path: FENCE_HOST_KEY, mode: "0600", secret: true, content: f.own.hostKey.endsWith("\n") ? f.own.hostKey : `${f.own.hostKey}\n` },
    {
      path: FENCE_CLIENT_KEY,
      mode: "0600",
      secret: true,
      content: f.own.clientKey.endsWith("\n") ? f.own.clientKey : `${f.own.clientKey}\n`,
    },
    {
      path: FENCE_AUTHORIZED_KEYS,
      mode: "0644",
      secret: false,
      content: [
        header,
        `# Only ${f.peer}, only from its mgmt address, only the forced command (sshd(8) AUTHORIZED_KEYS FILE FORMAT).`,
        `from="${f.peerMgmt}",restrict,command="${FENCED_COMMAND}" ${publicOnly(f.peers.clientKeyPublic)} ${f.peer}-fence`,
        "",
      ].join("\n"),
    },
    {
      path: FENCE_KNOWN_HOSTS,
      mode: "0644",
      secret: false,
      content: [header, `[${f.peerMgmt}]:${FENCE_SSH_PORT} ${publicOnly(f.peers.hostKeyPublic)}`, ""].join("\n"),
    },
    {
      path: FENCED_COMMAND,
      mode: "0755",
      secret: false,
      content: [
        "#!/bin/sh",
        header,
        `# What ${f.peer}'s fence key may do here: power this host off at once, without a shutdown, so that it`,
        "# stops serving before the peer takes its addresses. The line tells the peer that the fence took.",
        `logger -t standort-fence -p daemon.crit -- "fenced by ${f.peer} (\${SSH_CLIENT%% *}): ${FENCED_LINE}"`,
        `echo "${FENCED_LINE} ${f.self}"`,
        "# Let the line leave before the power goes.",
        "sleep 0.3",
        "exec systemctl poweroff --force --force",
        "",
      ].join("\n"),
    },
    {
      path: FENCE_UNIT_FILE,
      mode: "0644",
      secret: false,
      content: [
        header,
        "[Unit]",
        `Description=standort fence sshd of ${f.self}: ${f.peer} may power this host off, nothing else`,
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        `ExecStartPre=/usr/sbin/sshd -t -f ${FENCE_SSHD_CONFIG}`,
        `ExecStart=/usr/sbin/sshd -D -e -f ${FENCE_SSHD_CONFIG}`,
        "ExecReload=/bin/kill -HUP $MAINPID",
        "# The mgmt address may come up after this unit: try again until it binds.",
        "Restart=always",
        "RestartSec=2",
        "# sshd's privilege separation directory, shared with ssh.service: never removed when this unit stops.",
        "RuntimeDirectory=sshd",
        "RuntimeDirectoryMode=0755",
        "RuntimeDirectoryPreserve=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    },
    {
      path: FENCE_SSHD_CONFIG,
      mode: "0644",
      secret: false,
      content: [
        header,
        `# Listens on the mgmt address only; the packet filter admits ${f.peer} alone (rule mgmt-fence-${f.pair.role}).`,
        `Port ${FENCE_SSH_PORT}`,
        `ListenAddress ${f.selfMgmt}`,
        `HostKey ${FENCE_HOST_KEY}`,
        "PidFile /run/standort-fence-sshd.pid",
        `AuthorizedKeysFile ${FENCE_AUTHORIZED_KEYS}`,
        "AuthorizedPrincipalsFile none",
        `AllowUsers root@${f.peerMgmt}`,
        "# The banner names the host, so whoever reaches this port sees whose fence it is.",
        `VersionAddendum ${f.self} fence`,
        "PermitRootLogin forced-commands-only",
        `ForceCommand ${FENCED_COMMAND}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "UsePAM no",
        "DisableForwarding yes",
        "PermitTTY no",
        "PermitUserRC no",
        "LoginGraceTime 10",
        "MaxAuthTries 2",
        "",
      ].join("\n"),
    },
  ];
}
