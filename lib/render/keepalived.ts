/**
 * keepalived for every failover pair (firewall, proxy, storage), and the
 * failover script it runs on state changes: fence the peer, then move the
 * provider failover IP (or the static next hop of an own prefix).
 *
 * Why no `nopreempt`: it only works with `state BACKUP` on both members, and
 * the site file names the active member as a reviewed decision. With
 * `state MASTER`/`BACKUP` and priorities 150/100 the named member holds the
 * role whenever it is healthy, so the model and the network agree.
 *
 * Why no `script_user`: keepalived 2.2.7 exits 143 in `-t` mode with it. Each
 * script names its user (`root`) instead, which satisfies
 * `enable_script_security` without a `keepalived_script` account.
 */
import { z } from "zod";
import type { PairModel, SiteModel } from "../model/model";
import type { PairedRole } from "../model/schema";
import { ProblemCollector } from "./errors";
import { ipv4Address } from "./inputs";
import { addressIn, checkHost, findHost, findSegment, inPrefix, interfaceName, nicNames, pairOf } from "./interfaces";
import { linkPrefixLength } from "./routing";
import type { RenderOptions, RenderSecrets } from "./types";

export const KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf";
export const FAILOVER_SCRIPT = "/etc/keepalived/standort-failover.sh";
export const PROVIDER_ENV = "/etc/standort/provider.env";

/** Seconds the passive member waits after becoming master before fencing: a rebooting active member gets to preempt first. */
export const FENCE_GRACE_SECONDS = 10;

/**
 * `auth_type PASS` carries at most 8 characters; keepalived silently cuts
 * longer ones, so both members could end up with different passwords than the
 * secret store shows. Characters are limited to ones keepalived's parser takes
 * literally (no spaces, quotes, `#` or `!`).
 */
const vrrpPassword = z
  .string()
  .max(8, {
    error: (i) => `${String((i.input as string).length)} characters: auth_type PASS uses at most 8 (keepalived truncates longer passwords)`,
  })
  .regex(/^[A-Za-z0-9_.+=@%-]+$/, "must be 1–8 of A–Z a–z 0–9 _ . + = @ % -");

const providerEnvSchema = z.record(
  z.string().regex(/^[A-Z][A-Z0-9_]*$/, "environment names are upper-case letters, digits and _"),
  z.string().regex(/^[^'\n\r]*$/, "must not contain a single quote or a line break"),
);

/** What the failover script moves when its host becomes master. */
export type FailoverMove =
  | { readonly kind: "none" }
  /** A provider failover IP named `<site>-<purpose>` (Hetzner Cloud floating IP name), or given in provider.env. */
  | {
      readonly kind: "failover-ip";
      readonly purpose: "proxy" | "nat";
      readonly name: string;
      /** The address, where the site file declares it (pre-provisioned); Hetzner Cloud assigns it at creation. */
      readonly address?: string;
    }
  /** The provider-side address an own prefix is statically routed to. */
  | { readonly kind: "next-hop"; readonly address: string };

/**
 * What a pair moves on takeover: on provider-failover-ips sites the proxy pair
 * takes the `proxy` IP and the firewall pair the `nat` IP; on own-prefix sites
 * with a static route the firewall pair takes the next hop; BGP needs no move.
 */
export function failoverMove(model: SiteModel, role: PairedRole): FailoverMove {
  if (model.public.mode === "provider-failover-ips") {
    const purpose = role === "proxy" ? "proxy" : role === "firewall" ? "nat" : undefined;
    if (!purpose) return { kind: "none" };
    const address = model.public.declared?.[purpose];
    return { kind: "failover-ip", purpose, name: failoverIpName(model, purpose), ...(address ? { address } : {}) };
  }
  if (role === "firewall" && model.public.routing.kind === "static") return { kind: "next-hop", address: model.public.routing.nextHop };
  return { kind: "none" };
}

/** Name of a provider failover IP (the Hetzner Cloud floating IP the provisioning component creates): `<site>-<purpose>`. */
export function failoverIpName(model: SiteModel, purpose: "proxy" | "nat"): string {
  return `${model.name}-${purpose}`;
}

/** The provider.env variable that holds the API token: `HCLOUD_TOKEN` on Hetzner Cloud (as the fencing plan names it), else `PROVIDER_API_TOKEN`. */
export function tokenVariable(model: SiteModel): string {
  return model.provider.kind === "hcloud" ? "HCLOUD_TOKEN" : "PROVIDER_API_TOKEN";
}

/** The service each pair's VRRP instance tracks: lose it and the member steps down. */
function trackedServices(model: SiteModel, role: PairedRole): Array<{ name: string; script: string }> {
  switch (role) {
    case "proxy":
      return [{ name: "haproxy_running", script: "/usr/bin/systemctl is-active --quiet haproxy" }];
    case "storage":
      return [{ name: "nfs_running", script: "/usr/bin/systemctl is-active --quiet nfs-server" }];
    case "firewall":
      return [
        { name: "ruleset_loaded", script: "/usr/sbin/nft list table inet standort" },
        ...(model.public.mode === "own-prefix" && model.public.routing.kind === "bgp"
          ? [{ name: "bird_running", script: "/usr/bin/systemctl is-active --quiet bird" }]
          : []),
      ];
  }
}

/** The instance name keepalived logs: the pair name with underscores. */
export function vrrpInstanceName(pair: PairModel): string {
  return pair.name.replace(/-/g, "_");
}

/** Checks the pair and secrets a host's keepalived needs; returns the pair when the host renders keepalived at all. */
function checkPair(
  model: SiteModel,
  hostName: string,
  secrets: RenderSecrets,
  problems: ProblemCollector,
  options: RenderOptions,
): PairModel | undefined {
  const host = checkHost(model, hostName, problems, options);
  if (!host) return undefined;
  const pairIndex = model.pairs.findIndex((p) => p.members.includes(hostName));
  if (pairIndex < 0) {
    problems.add("hostName", `${hostName} is a ${host.role} host, which belongs to no failover pair`);
    return undefined;
  }
  const pair = model.pairs[pairIndex];
  const at = `pairs[${pairIndex}]`;
  if (pair.dissolved && pair.active !== hostName) {
    problems.add("hostName", `${hostName} was released from the dissolved ${pair.role} pair: only ${pair.active} runs keepalived`);
    return undefined;
  }
  const hb = findSegment(model, pair.heartbeatSegment);
  if (!hb) {
    problems.add(`${at}.heartbeatSegment`, `${pair.heartbeatSegment} is not a segment of ${model.name}`);
    return undefined;
  }
  const members = pair.dissolved ? [pair.active] : [...pair.members];
  const seen = new Map<string, string>();
  for (const member of members) {
    const address = pair.heartbeat[member];
    const field = `${at}.heartbeat.${member}`;
    if (address === undefined || address === "") {
      problems.add(field, `is missing: ${member} needs an address in ${hb.name} (${hb.cidr})`);
      continue;
    }
    const memberHost = findHost(model, member);
    if (!ipv4Address.safeParse(address).success) problems.add(field, `${address} is not an IPv4 address`);
    else if (!inPrefix(address, hb.cidr)) problems.add(field, `${address} is outside segment ${hb.name} (${hb.cidr})`);
    else if (!memberHost) problems.add(`${at}.members`, `${member} is not a host of ${model.name}`);
    else if (addressIn(memberHost, hb.name) !== address) {
      problems.add(field, `${address} is not ${member}'s address in ${hb.name} (${addressIn(memberHost, hb.name) ?? "none"})`);
    }
    const other = seen.get(address);
    if (other) problems.add(field, `${address} is also ${other}'s heartbeat address`);
    seen.set(address, member);
  }
  if (!Number.isInteger(pair.vrid) || pair.vrid < 1 || pair.vrid > 255)
    problems.add(`${at}.vrid`, `${pair.vrid} must be between 1 and 255`);
  for (const member of members) {
    const priority = pair.priorities[member];
    if (priority === undefined || !Number.isInteger(priority) || priority < 1 || priority > 254) {
      problems.add(`${at}.priorities.${member}`, `${String(priority)} must be between 1 and 254 (255 is reserved for an address owner)`);
    }
  }
  if (!pair.dissolved && (pair.priorities[pair.active] ?? 0) <= (pair.priorities[pair.passive] ?? 0)) {
    problems.add(`${at}.priorities`, `the active member ${pair.active} must have a higher priority than ${pair.passive}`);
  }
  if (pair.vips.length === 0) problems.add(`${at}.vips`, "the pair has no VIP to hold");
  pair.vips.forEach((vip, i) => {
    const segment = findSegment(model, vip.segment);
    if (!segment) problems.add(`${at}.vips[${i}].segment`, `${vip.segment} is not a segment of ${model.name}`);
    else if (!inPrefix(vip.address, segment.cidr))
      problems.add(`${at}.vips[${i}].address`, `${vip.address} is outside segment ${segment.name} (${segment.cidr})`);
    else if (!host.interfaces.some((x) => x.segment === vip.segment)) {
      problems.add(`${at}.vips[${i}].segment`, `${hostName} has no interface in ${vip.segment} to hold ${vip.address}`);
    }
    const holder = model.hosts.find((h) => h.interfaces.some((x) => x.address === vip.address));
    if (holder) problems.add(`${at}.vips[${i}].address`, `${vip.address} is ${holder.name}'s own address`);
  });
  const password = secrets.vrrp[pair.name];
  if (password === undefined) problems.add(`secrets.vrrp.${pair.name}`, "is required: VRRP adverts are authenticated");
  else problems.parse(vrrpPassword, password, `secrets.vrrp.${pair.name}`);
  if (options.providerEnv) problems.parse(providerEnvSchema, options.providerEnv, "options.providerEnv");
  const move = failoverMove(model, pair.role);
  const apiFencing = model.provider.kind === "hcloud" && !pair.dissolved;
  if ((apiFencing || (move.kind !== "none" && model.provider.kind === "hcloud")) && !secrets.providerApiToken) {
    problems.add(
      "secrets.providerApiToken",
      `is required on ${model.name}: the failover script fences and moves addresses through the provider API`,
    );
  }
  if (model.provider.kind === "preprovisioned" && !pair.dissolved && model.provider.fenceCommand.trim() === "") {
    problems.add("provider.fenceCommand", "must not be empty: the surviving member fences the failed one before taking over");
  }
  return pair;
}

/**
 * Renders `/etc/keepalived/keepalived.conf` for a member of a failover pair.
 * Unicast VRRP on the pair's heartbeat segment, `auth_type PASS`, the pair's
 * VIPs on their segment interfaces, the failover script on every state change.
 * A dissolved pair renders only its active member (no peer).
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderKeepalivedConfig(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const pair = checkPair(model, hostName, secrets, problems, options);
  problems.throwIfAny();
  const p = pair!;
  const active = p.active === hostName;
  const peer = p.dissolved ? undefined : p.members.find((m) => m !== hostName)!;
  const tracked = trackedServices(model, p.role);
  const lines = [
    `# standort: keepalived of ${hostName} (${active ? "active" : "passive"} member of the ${p.role} pair of ${model.name}${p.dissolved ? ", dissolved" : ""}).`,
    `# Rendered from ${model.file}; do not edit.`,
    "global_defs {",
    `\trouter_id ${hostName}`,
    "\t# Scripts must be root-owned and not writable by others; each one names its user.",
    "\tenable_script_security",
    "}",
  ];
  for (const t of tracked) {
    lines.push("", `vrrp_script ${t.name} {`, `\tscript "${t.script}"`, "\tuser root", "\tinterval 2", "\tfall 2", "\trise 2", "}");
  }
  lines.push(
    "",
    `vrrp_instance ${vrrpInstanceName(p)} {`,
    "\t# The site file names the active member; it takes the addresses back whenever it is healthy.",
    `\tstate ${active ? "MASTER" : "BACKUP"}`,
    `\tinterface ${interfaceName(p.heartbeatSegment)}`,
    `\tvirtual_router_id ${p.vrid}`,
    `\tpriority ${p.priorities[hostName]}`,
    "\tadvert_int 1",
  );
  if (peer) {
    lines.push(`\tunicast_src_ip ${p.heartbeat[hostName]}`, "\tunicast_peer {", `\t\t${p.heartbeat[peer]}`, "\t}");
  } else {
    lines.push("\t# Dissolved pair: no peer; this member holds the addresses alone.");
  }
  lines.push(
    "\tauthentication {",
    "\t\tauth_type PASS",
    `\t\tauth_pass ${secrets.vrrp[p.name]}`,
    "\t}",
    "\tvirtual_ipaddress {",
    ...p.vips.map((v) => `\t\t${v.address}/${linkPrefixLength(model, v.prefixLength)} dev ${interfaceName(v.segment)}`),
    "\t}",
  );
  if (tracked.length > 0) lines.push("\ttrack_script {", ...tracked.map((t) => `\t\t${t.name}`), "\t}");
  lines.push(
    `\tnotify_master "${FAILOVER_SCRIPT} master" root`,
    `\tnotify_backup "${FAILOVER_SCRIPT} backup" root`,
    `\tnotify_fault "${FAILOVER_SCRIPT} fault" root`,
    `\tnotify_stop "${FAILOVER_SCRIPT} stop" root`,
    "}",
  );
  return lines.join("\n") + "\n";
}

/** Quotes a value for POSIX sh (single quotes; validated values hold none). */
function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** Shell functions that fence the peer, by provider. */
function fenceFunctions(model: SiteModel, peer: string): string[] {
  if (model.provider.kind === "hcloud") {
    return [
      "FENCE_KIND=api",
      "# Hetzner Cloud: power the peer off through the API (hard power-off, no shutdown).",
      "fence_peer() {",
      '\tid=$(server_id "$PEER") || return 1',
      '\thcloud_api -X POST "$HCLOUD_API/servers/$id/actions/poweroff" >/dev/null',
      "}",
    ];
  }
  const command = model.provider.fenceCommand.replace(/%h/g, peer);
  return [
    "FENCE_KIND=command",
    "# Pre-provisioned: the site's fence command (provider.fenceCommand, %h = the peer).",
    `FENCE_COMMAND=${shQuote(command)}`,
    "fence_peer() {",
    '\tsh -c "$FENCE_COMMAND"',
    "}",
  ];
}

/** Shell function that moves the failover address to this host, by provider. */
function moveFunctions(model: SiteModel, move: FailoverMove): string[] {
  if (move.kind === "none") {
    return [
      "# Nothing to move: the own prefix follows BGP, or this pair has no public address.",
      "move_failover_address() {",
      "\treturn 0",
      "}",
    ];
  }
  const uplink = [
    "# The address also goes on the uplink, so this host answers for it.",
    "hold_address() {",
    '\tip addr replace "$1/32" dev "$UPLINK" && printf \'%s\\n\' "$1" > "$ADDRESS_FILE"',
    "}",
  ];
  if (model.provider.kind === "hcloud" && move.kind === "failover-ip") {
    return [
      ...uplink,
      `FAILOVER_IP_NAME=${shQuote(move.name)}`,
      "# Hetzner Cloud: assign the floating IP (looked up by name) to this server.",
      "move_failover_address() {",
      '\tfip=$(hcloud_api "$HCLOUD_API/floating_ips?name=$FAILOVER_IP_NAME") || return 1',
      "\tfid=$(printf '%s' \"$fip\" | jq -er '.floating_ips[0].id') || return 1",
      "\taddress=$(printf '%s' \"$fip\" | jq -er '.floating_ips[0].ip') || return 1",
      '\tself=$(server_id "$SELF") || return 1',
      '\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"server\\":$self}" "$HCLOUD_API/floating_ips/$fid/actions/assign" >/dev/null || return 1',
      '\thold_address "$address"',
      "}",
    ];
  }
  const addressLine =
    move.kind === "next-hop" || move.address !== undefined
      ? [`FAILOVER_ADDRESS=${move.address}`]
      : [
          `# The provider-assigned address comes from ${PROVIDER_ENV} (FAILOVER_IP_${move.purpose.toUpperCase()}).`,
          `FAILOVER_ADDRESS=\${FAILOVER_IP_${move.purpose.toUpperCase()}:-}`,
        ];
  if (model.provider.kind === "preprovisioned" && model.provider.name === "ionos") {
    return [
      ...uplink,
      ...addressLine,
      "# IONOS: point the LAN's IP failover group at this server's NIC (ids from provider.env).",
      "move_failover_address() {",
      "\tfor v in FAILOVER_ADDRESS IONOS_DATACENTER_ID IONOS_LAN_ID IONOS_NIC_ID PROVIDER_API_TOKEN; do",
      '\t\teval "[ -n \\"\\${$v:-}\\" ]" || { log "$PROVIDER_ENV_FILE lacks $v: cannot move the failover address"; return 1; }',
      "\tdone",
      '\tcurl -fsS --max-time 15 -X PATCH -H "Authorization: Bearer $PROVIDER_API_TOKEN" -H "Content-Type: application/json" \\',
      '\t\t-d "{\\"ipFailover\\":[{\\"ip\\":\\"$FAILOVER_ADDRESS\\",\\"nicUuid\\":\\"$IONOS_NIC_ID\\"}]}" \\',
      '\t\t"https://api.ionos.com/cloudapi/v6/datacenters/$IONOS_DATACENTER_ID/lans/$IONOS_LAN_ID" >/dev/null || return 1',
      '\thold_address "$FAILOVER_ADDRESS"',
      "}",
    ];
  }
  return [
    ...uplink,
    ...addressLine,
    "# This provider's move is a command from provider.env (FAILOVER_MOVE_COMMAND; FAILOVER_ADDRESS and SELF are exported).",
    "move_failover_address() {",
    '\t[ -n "$FAILOVER_ADDRESS" ] || { log "no failover address known: cannot move it"; return 1; }',
    '\t[ -n "${FAILOVER_MOVE_COMMAND:-}" ] || { log "$PROVIDER_ENV_FILE lacks FAILOVER_MOVE_COMMAND: cannot move $FAILOVER_ADDRESS"; return 1; }',
    "\texport FAILOVER_ADDRESS SELF",
    '\tsh -c "$FAILOVER_MOVE_COMMAND" || return 1',
    '\thold_address "$FAILOVER_ADDRESS"',
    "}",
  ];
}

/**
 * Renders the failover script keepalived runs on every state change
 * (`/etc/keepalived/standort-failover.sh master|backup|fault|stop`).
 *
 * On `master`: the passive member waits `FENCE_GRACE_SECONDS` (a rebooting
 * active member preempts in that time), then fences the peer — through the
 * provider's power-off API where there is one, else the site's fence command;
 * a fence command that fails counts only when the peer answers neither on the
 * heartbeat nor on its public address. Only a fenced peer lets the script
 * move the failover address. The active member never fences: it takes over
 * only from a peer that yielded to its higher priority.
 * On `backup`/`fault`/`stop`: drops the failover address from the uplink.
 */
export function renderFailoverScript(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const pair = checkPair(model, hostName, secrets, problems, options);
  problems.throwIfAny();
  const p = pair!;
  const peer = p.dissolved ? undefined : p.members.find((m) => m !== hostName)!;
  const peerHost = peer ? findHost(model, peer) : undefined;
  const move = failoverMove(model, p.role);
  const member = p.active === hostName ? "active" : "passive";
  const usesApi = model.provider.kind === "hcloud";
  const lines = [
    "#!/bin/sh",
    `# standort: failover script of ${hostName} (${member} member of the ${p.role} pair of ${model.name}). Rendered from ${model.file}; do not edit.`,
    "# keepalived runs it on every state change with one argument: master, backup, fault or stop.",
    "set -u",
    "",
    `PAIR=${p.name}`,
    `SELF=${hostName}`,
    `PEER=${peer ?? ""}`,
    `PEER_HEARTBEAT=${peer ? p.heartbeat[peer] : ""}`,
    `PEER_PUBLIC=${peerHost?.publicAddress ?? ""}`,
    `MEMBER=${member}`,
    `GRACE_SECONDS=${FENCE_GRACE_SECONDS}`,
    `UPLINK=${nicNames(options).uplink}`,
    "# Overridable only so that tests can run the script without touching the host.",
    "RUN_DIR=${STANDORT_RUN_DIR:-/run/standort}",
    `STATE_FILE=$RUN_DIR/failover-${p.name}.state`,
    `ADDRESS_FILE=$RUN_DIR/failover-${p.name}.address`,
    "# Present only on the member that serves: jobs and tunnels that must run once per pair check it.",
    `ACTIVE_FLAG=$RUN_DIR/${p.role}-active`,
    `PROVIDER_ENV_FILE=\${STANDORT_PROVIDER_ENV:-${PROVIDER_ENV}}`,
    "",
    'log() { logger -t standort-failover -p daemon.notice -- "$PAIR: $*"; echo "$PAIR: $*" >&2; }',
    "",
    "# shellcheck disable=SC1090",
    '[ -r "$PROVIDER_ENV_FILE" ] && . "$PROVIDER_ENV_FILE"',
    "",
  ];
  if (usesApi) {
    lines.push(
      "HCLOUD_API=https://api.hetzner.cloud/v1",
      'hcloud_api() { curl -fsS --max-time 10 -H "Authorization: Bearer ${HCLOUD_TOKEN:-}" "$@"; }',
      "server_id() { hcloud_api \"$HCLOUD_API/servers?name=$1\" | jq -er '.servers[0].id'; }",
      "",
    );
  }
  lines.push(
    ...(peer ? fenceFunctions(model, peer) : ["FENCE_KIND=none", "fence_peer() { return 0; }"]),
    "",
    ...moveFunctions(model, move),
    "",
    ...(usesApi ? [...hcloudVipFunctions(model, hostName, peer), ""] : []),
  );
  lines.push(
    "peer_unreachable() {",
    '\t! ping -c 2 -W 1 -q "$PEER_HEARTBEAT" >/dev/null 2>&1 || return 1',
    '\t[ -z "$PEER_PUBLIC" ] || ! ping -c 2 -W 1 -q "$PEER_PUBLIC" >/dev/null 2>&1',
    "}",
    "",
    'mkdir -p "$RUN_DIR"',
    'state="${1:-}"',
    'case "$state" in',
    "\t# Each takeover writes its own token: a script still waiting from an earlier takeover sees a",
    "\t# newer one and steps aside instead of fencing a member that came back and left again.",
    '\tmaster) echo "master $$" > "$STATE_FILE" ;;',
    "\tbackup | fault | stop)",
    '\t\techo "$state" > "$STATE_FILE"',
    '\t\trm -f "$ACTIVE_FLAG"',
    ...roleHooks(p.role).down.map((l) => `\t\t${l}`),
    '\t\tif [ -s "$ADDRESS_FILE" ]; then ip addr del "$(cat "$ADDRESS_FILE")/32" dev "$UPLINK" 2>/dev/null; rm -f "$ADDRESS_FILE"; fi',
    "\t\texit 0",
    "\t\t;;",
    "\t*) log \"unknown state '$state'\"; exit 2 ;;",
    "esac",
    "",
    'if [ "$MEMBER" = passive ] && [ -n "$PEER" ]; then',
    '\tlog "became master; waiting ${GRACE_SECONDS}s for $PEER before fencing it"',
    '\tsleep "$GRACE_SECONDS"',
    '\tif [ "$(cat "$STATE_FILE" 2>/dev/null)" != "master $$" ]; then',
    '\t\tlog "no longer master: $PEER is back; not fencing"',
    "\t\texit 0",
    "\tfi",
    "\tattempt=1",
    "\tuntil fence_peer; do",
    '\t\tif [ "$attempt" -ge 3 ]; then',
    '\t\t\tif [ "$FENCE_KIND" = command ] && peer_unreachable; then',
    '\t\t\t\tlog "fence command failed but $PEER answers on neither address: treating it as down"',
    "\t\t\t\tbreak",
    "\t\t\tfi",
    '\t\t\tlog "fencing $PEER failed ${attempt} times: not taking the failover address (split-brain risk)"',
    "\t\t\texit 1",
    "\t\tfi",
    "\t\tattempt=$((attempt + 1))",
    "\t\tsleep 2",
    "\tdone",
    '\tlog "fenced $PEER"',
    "fi",
    "",
    ...(usesApi ? ["if ! move_vips; then", '\tlog "moving the VIPs to $SELF failed"', "\texit 1", "fi"] : []),
    "if ! move_failover_address; then",
    '\tlog "moving the failover address to $SELF failed"',
    "\texit 1",
    "fi",
    'touch "$ACTIVE_FLAG"',
    ...roleHooks(p.role).up,
    'log "$SELF is master"',
    "",
  );
  return lines.join("\n");
}

/** Name of a Hetzner Cloud site's private network (the provisioning names it the same way). */
export function hcloudNetworkName(model: SiteModel): string {
  return `${model.name}-net`;
}

/**
 * A Hetzner Cloud host's alias IPs on its network attachment: every segment
 * address but the first (which is the attachment's own IP) and, while it holds
 * them, its pair's VIPs. Hetzner's fabric delivers an address only to the
 * server it is an alias of, and to one server at a time.
 */
export function hcloudAliasIps(model: SiteModel, hostName: string, holdsVips: boolean): string[] {
  const host = model.hosts.find((h) => h.name === hostName);
  if (!host) throw new Error(`${model.name} has no host ${hostName}`);
  const own = host.interfaces.slice(1).map((i) => i.address);
  const pair = model.pairs.find((p) => p.members.includes(hostName));
  return holdsVips && pair ? [...own, ...pair.vips.map((v) => v.address)] : own;
}

/** The lines that move a pair's VIPs between the members' Hetzner Cloud network attachments. */
function hcloudVipFunctions(model: SiteModel, hostName: string, peer: string | undefined): string[] {
  const json = (addresses: string[]) => shQuote(JSON.stringify(addresses));
  return [
    `VIP_NETWORK=${shQuote(hcloudNetworkName(model))}`,
    `SELF_ALIASES=${json(hcloudAliasIps(model, hostName, true))}`,
    `PEER_ALIASES=${json(peer ? hcloudAliasIps(model, peer, false) : [])}`,
    "# Hetzner Cloud: a VIP reaches a server only as an alias IP of its network attachment, and only one",
    "# server may hold it: take the VIPs off the (fenced) peer first, then put them on this server.",
    "move_vips() {",
    '\tnet=$(hcloud_api "$HCLOUD_API/networks?name=$VIP_NETWORK" | jq -er \'.networks[0].id\') && [ -n "$net" ] || return 1',
    '\tif [ -n "$PEER" ]; then',
    '\t\tpeer_id=$(server_id "$PEER") &&',
    '\t\t\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"network\\":$net,\\"alias_ips\\":$PEER_ALIASES}" "$HCLOUD_API/servers/$peer_id/actions/change_alias_ips" >/dev/null ||',
    '\t\t\tlog "could not take the VIPs off $PEER"',
    "\tfi",
    '\tself=$(server_id "$SELF") || return 1',
    '\thcloud_api -X POST -H "Content-Type: application/json" -d "{\\"network\\":$net,\\"alias_ips\\":$SELF_ALIASES}" "$HCLOUD_API/servers/$self/actions/change_alias_ips" >/dev/null',
    "}",
  ];
}

/** WireGuard tunnels of the site (`/etc/wireguard/wg-*.conf`) run on the active firewall only. */
export const TUNNEL_CONFIG_GLOB = "/etc/wireguard/wg-*.conf";

/**
 * What else follows the active member: the firewall pair's site-to-site
 * tunnels run where the tunnel endpoint (the NAT address) is, so they start on
 * the new master and stop on the member that steps down; a second member
 * answering with the same key would steal the peer's endpoint.
 */
export function roleHooks(role: PairedRole): { up: string[]; down: string[] } {
  if (role !== "firewall") return { up: [], down: [] };
  const each = (verb: string) =>
    `for conf in ${TUNNEL_CONFIG_GLOB}; do [ -e "$conf" ] || continue; systemctl ${verb} "wg-quick@$(basename "$conf" .conf)" || log "${verb} of $(basename "$conf" .conf) failed"; done`;
  return { up: [each("restart")], down: [each("stop")] };
}

/** The stack's `providerEnv` key that holds one host's IONOS NIC uuid: `IONOS_NIC_ID_<HOST>` (upper case, `_` for `-`). */
export function ionosNicKey(hostName: string): string {
  return `IONOS_NIC_ID_${hostName.toUpperCase().replace(/-/g, "_")}`;
}

/**
 * The `providerEnv` keys a site's failover scripts need to move its
 * addresses: on IONOS the data center, the LAN and each moving member's NIC
 * (`PATCH /datacenters/{dc}/lans/{lan}` with `ipFailover`, IONOS Cloud API
 * v6); elsewhere on a pre-provisioned site the operator's
 * `FAILOVER_MOVE_COMMAND`. Hetzner Cloud needs none (its API finds servers by name).
 */
export function requiredProviderEnv(model: SiteModel): string[] {
  if (model.provider.kind === "hcloud") return [];
  const moving = model.pairs.filter((p) => failoverMove(model, p.role).kind !== "none");
  if (moving.length === 0) return [];
  if (model.provider.name === "ionos" && moving.every((p) => failoverMove(model, p.role).kind === "failover-ip")) {
    const members = moving.flatMap((p) => (p.dissolved ? [p.active] : [...p.members]));
    return ["IONOS_DATACENTER_ID", "IONOS_LAN_ID", ...members.map(ionosNicKey)];
  }
  return ["FAILOVER_MOVE_COMMAND"];
}

/**
 * Renders `/etc/standort/provider.env` (mode 0600): the provider API token and
 * the extra environment of `options.providerEnv`, read by the failover script.
 * Each host's own IONOS NIC (`IONOS_NIC_ID_<HOST>`) becomes its `IONOS_NIC_ID`;
 * the other hosts' NICs stay out. Returns undefined when there is nothing to write.
 */
export function renderProviderEnv(
  model: SiteModel,
  hostName: string,
  secrets: RenderSecrets,
  options: RenderOptions = {},
): string | undefined {
  const problems = new ProblemCollector(model.name, hostName);
  checkHost(model, hostName, problems, options);
  const env = options.providerEnv ? problems.parse(providerEnvSchema, options.providerEnv, "options.providerEnv") : {};
  if (secrets.providerApiToken !== undefined && !/^[^'\n\r]+$/.test(secrets.providerApiToken)) {
    problems.add("secrets.providerApiToken", "must be non-empty without a single quote or a line break");
  }
  problems.throwIfAny();
  const own = ionosNicKey(hostName);
  const entries: Array<[string, string]> = [
    ...(secrets.providerApiToken !== undefined ? [[tokenVariable(model), secrets.providerApiToken] as [string, string]] : []),
    ...Object.keys(env!)
      .filter((k) => !k.startsWith("IONOS_NIC_ID_") || k === own)
      .map((k) => [k === own ? "IONOS_NIC_ID" : k, env![k]] as [string, string])
      .sort(([a], [b]) => a.localeCompare(b)),
  ];
  if (entries.length === 0) return undefined;
  return [
    `# standort: provider access of ${hostName} (${model.name}) for the failover script. Rendered; do not edit.`,
    ...entries.map(([k, v]) => `${k}=${shQuote(v)}`),
    "",
  ].join("\n");
}

/** True when the host runs keepalived: a member of a pair, and not the released member of a dissolved pair. */
export function runsKeepalived(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair !== undefined && (!pair.dissolved || pair.active === hostName);
}
