/**
 * Hetzner dedicated servers (Robot): servers are ordered, not created through
 * an API, so they are handed over (`../handed-over.ts`). The site's segments
 * are vSwitches: one per segment, each a VLAN (ids 4000–4091, from
 * `provider.vswitchVlanBase`) on the server's main NIC, which also holds its
 * public address (no second NIC), with MTU 1400 on the VLAN links. No own
 * prefix (no BYOIP): the public addresses are failover IPs, which the member
 * that takes over routes to its own main IP through the Robot web service;
 * a peer the mgmt fence cannot reach is switched off by the web service's
 * reset (a long press of the power button). Both calls take the web service
 * user's credentials (`user:password`, the stack's `standort:providerApiToken`)
 * on curl's standard input, never on a command line.
 */
import type { ProviderAdapter } from "../adapter";
import type { SiteModel } from "../../model/model";
import { handedOverAdapter } from "../handed-over";
import {
  ROBOT_API,
  ROBOT_MACS_PER_PORT,
  ROBOT_POWER_OFF_SECONDS,
  ROBOT_RESET_TIMEOUT_SECONDS,
  ROBOT_RETRY_SPACING_SECONDS,
  ROBOT_SERVERS_PER_VSWITCH,
  ROBOT_SWITCHES_PER_HOUR,
  ROBOT_SWITCH_TIMEOUT_SECONDS,
  ROBOT_VLAN_RANGE,
  ROBOT_VSWITCH_MTU,
  ROBOT_VSWITCHES_PER_SERVER,
  robotProviderSchema,
} from "./schema";

export * from "./schema";

const VSWITCH_DOCS = "Hetzner Docs, vSwitch";

/** The VLAN id base of a site (the schema's default where the model carries none). */
function vlanBase(provider: SiteModel["provider"]): number {
  return "vswitchVlanBase" in provider ? provider.vswitchVlanBase : ROBOT_VLAN_RANGE[0];
}

/** The vSwitch VLAN id of a segment: the base plus the segment's index in the address plan order. */
export function robotVlanId(model: SiteModel, segment: string): number | undefined {
  const index = model.segments.findIndex((s) => s.name === segment);
  return index < 0 ? undefined : vlanBase(model.provider) + index;
}

/**
 * The curl call of the Robot web service, as sh lines: `robot_post PATH FIELD=VALUE SECONDS` posts one form
 * field, prints the HTTP status and leaves the answer in `$ROBOT_ANSWER`. The credentials go to curl on its
 * standard input as a config line (`"` and `\` escaped for curl's quoting), never on a command line.
 */
const PREAMBLE = [
  `ROBOT_API=${ROBOT_API}`,
  "# The last answer of the web service (a command substitution's subshell cannot hand a variable back).",
  'ROBOT_ANSWER="$RUN_DIR/robot-answer.$$"',
  "# The web service user's credentials (user:password) go to curl on its standard input (a config line), never",
  "# on a command line others can read; printf is the shell's own, and sed reads them on its standard input.",
  "robot_post() {",
  '\tcase "${ROBOT_CREDENTIALS:-}" in',
  "\t?*:?*) ;;",
  '\t*) log "$PROVIDER_ENV_FILE lacks ROBOT_CREDENTIALS (user:password of the Robot web service user)"; return 1 ;;',
  "\tesac",
  '\tprintf \'user = "%s"\\n\' "$(printf \'%s\' "$ROBOT_CREDENTIALS" | sed \'s/[\\\\"]/\\\\&/g\')" |',
  '\t\tcurl -sS --max-time "$3" -K - -o "$ROBOT_ANSWER" -w \'%{http_code}\' -d "$2" "$ROBOT_API$1"',
  "}",
  '# The error code of the last answer (Robot answers errors as {"error":{"code":…}}), or nothing.',
  "robot_error() {",
  "\tjq -r '.error.code // empty' \"$ROBOT_ANSWER\" 2>/dev/null",
  "}",
  "",
];

const base = { id: "hetzner-robot", operator: "hetzner", label: "Hetzner dedicated (Robot)", displayName: "Hetzner Robot" } as const;

const adapter: ProviderAdapter = handedOverAdapter(base, {
  schema: robotProviderSchema,
  describe: (provider) => `Hetzner dedicated (Robot)${"region" in provider && provider.region ? ` ${provider.region}` : ""}`,
  ownPrefix: {
    routable: false,
    how: "Hetzner has no documented way to bring an own prefix (BYOIP) to dedicated servers: the site uses failover IPs",
  },
  failoverIps: "declared",
  siteProblems(site, file, context) {
    const problems: string[] = [];
    const provider = site.provider;
    const hosts = "hosts" in provider ? provider.hosts : [];
    const extras = site.network.extraSegments.length;
    // Every segment is one vSwitch; a server joins the vSwitch of every segment its role is a member of.
    for (const role of [...new Set(hosts.map((h) => h.role))]) {
      const joined = context.segments.filter((s) => s.members.includes(role)).map((s) => s.name);
      if (joined.length > ROBOT_VSWITCHES_PER_SERVER) {
        const over = joined.length - ROBOT_VSWITCHES_PER_SERVER;
        problems.push(
          `${file}: network.extraSegments: a ${role} host would join ${joined.length} vSwitches (${joined.join(", ")}), one per segment, but a Hetzner dedicated server can be in at most ${ROBOT_VSWITCHES_PER_SERVER} vSwitches (${VSWITCH_DOCS}): ${extras > 0 ? `remove ${Math.min(over, extras)} extra segment(s) the ${role} hosts join` : "the standard segments alone exceed it"}`,
        );
      }
    }
    for (const segment of context.segments) {
      const servers = hosts.filter((h) => segment.members.includes(h.role)).length;
      if (servers > ROBOT_SERVERS_PER_VSWITCH)
        problems.push(
          `${file}: provider.hosts: ${servers} servers would join the vSwitch of segment ${segment.name}, but a vSwitch joins at most ${ROBOT_SERVERS_PER_VSWITCH} servers (${VSWITCH_DOCS}): list fewer hosts of the roles ${segment.members.join(", ")}`,
        );
    }
    const first = "vswitchVlanBase" in provider ? provider.vswitchVlanBase : ROBOT_VLAN_RANGE[0];
    const last = first + context.segments.length - 1;
    if (last > ROBOT_VLAN_RANGE[1])
      problems.push(
        `${file}: provider.vswitchVlanBase: ${first} gives the site's ${context.segments.length} segments the VLAN ids ${first}–${last}, but a vSwitch's VLAN id is at most ${ROBOT_VLAN_RANGE[1]} (${ROBOT_VLAN_RANGE[0]}–${ROBOT_VLAN_RANGE[1]}, ${VSWITCH_DOCS}): use a base of at most ${ROBOT_VLAN_RANGE[1] - context.segments.length + 1}`,
      );
    if ("fenceCommand" in provider && provider.fenceCommand !== undefined)
      problems.push(
        `${file}: provider.fenceCommand: a Hetzner dedicated server is fenced through the Robot web service's reset (power_long), which the failover script calls itself: remove the field`,
      );
    if (site.roles.storage.dataDisk === undefined)
      problems.push(
        `${file}: roles.storage.dataDisk: is required on Hetzner dedicated servers, which have no virtio disk (/dev/vdb): name each store's data disk, for example /dev/sdb or its /dev/disk/by-id link`,
      );
    return problems;
  },
  segments: {
    kind: "vlans",
    nic: "uplink",
    vlanId: robotVlanId,
    vlanRange: ROBOT_VLAN_RANGE,
    mtu: ROBOT_VSWITCH_MTU,
    note: `segments are Hetzner vSwitches, one per segment, as VLANs ${ROBOT_VLAN_RANGE[0]}–${ROBOT_VLAN_RANGE[1]} on each server's main NIC (MTU ${ROBOT_VSWITCH_MTU})`,
  },
  failover: {
    tokenVariable: "ROBOT_CREDENTIALS",
    // The web service takes user:password: a placeholder without the colon would stop the script before the call.
    tokenPlaceholder: "plan-only-user:plan-only-password",
    apiFence: true,
    movesNeedToken: () => true,
    preamble: () => PREAMBLE,
    fenceSecond: () => [
      "# Second: the Robot web service's reset of the peer's server, a long press of its power button (forced off);",
      `# the peer counts as off once it answers on none of its addresses (within ${ROBOT_POWER_OFF_SECONDS} s).`,
      "fence_second() {",
      '\t[ -n "$PEER_PUBLIC" ] || { log "the peer\'s main IP is unknown: cannot reset it"; return 1; }',
      `\tcode=$(robot_post "/reset/$PEER_PUBLIC" type=power_long ${ROBOT_RESET_TIMEOUT_SECONDS})`,
      '\tif [ "$code" != 200 ]; then',
      '\t\tlog "Robot refused the reset of $PEER ($PEER_PUBLIC): HTTP ${code:-none} $(robot_error)"',
      '\t\trm -f "$ROBOT_ANSWER"',
      "\t\treturn 1",
      "\tfi",
      '\trm -f "$ROBOT_ANSWER"',
      `\tdeadline=$(($(date +%s) + ${ROBOT_POWER_OFF_SECONDS}))`,
      '\twhile answers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" "$PEER_PUBLIC"; do',
      `\t\t[ "$(date +%s)" -lt "$deadline" ] || { log "$PEER still answers ${ROBOT_POWER_OFF_SECONDS} s after its reset"; return 1; }`,
      "\t\tsleep 1",
      "\tdone",
      '\tlog "Robot reset $PEER ($PEER_PUBLIC): it answers no more"',
      "}",
    ],
    moveAddress(_model, move, common) {
      if (move.kind !== "failover-ip") throw new Error("Hetzner dedicated servers route no own prefix: only failover IPs move");
      if (common.selfAddress === undefined) throw new Error("a Robot failover IP is routed to the server's main IP, which the model lacks");
      return [
        ...common.uplink,
        ...common.addressLine,
        "# This server's main IP: Robot routes the failover IP to it.",
        `ACTIVE_SERVER_IP=${common.selfAddress}`,
        `# A failed switch is tried again at most every ${ROBOT_RETRY_SPACING_SECONDS} s: Robot allows about ${ROBOT_SWITCHES_PER_HOUR} switches an hour (reported).`,
        `ROBOT_RETRY_SPACING=${ROBOT_RETRY_SPACING_SECONDS}`,
        `ROBOT_FAILED_AT="$RUN_DIR/robot-switch-failed-$PAIR"`,
        "# Hetzner Robot: route the failover IP to this server's main IP (the call returns once it is routed: 40–60 s).",
        "move_failover_address() {",
        '\t[ -n "$FAILOVER_ADDRESS" ] || { log "no failover address known: cannot move it"; return 1; }',
        '\tlast=$(cat "$ROBOT_FAILED_AT" 2>/dev/null || echo 0)',
        '\t[ $(($(date +%s) - last)) -ge "$ROBOT_RETRY_SPACING" ] || return 1',
        `\tcode=$(robot_post "/failover/$FAILOVER_ADDRESS" "active_server_ip=$ACTIVE_SERVER_IP" ${ROBOT_SWITCH_TIMEOUT_SECONDS})`,
        "\terror=$(robot_error)",
        '\trm -f "$ROBOT_ANSWER"',
        "\t# Already routed here (an earlier call timed out after Robot took it): done.",
        '\tif [ "$code" != 200 ] && [ "$error" != FAILOVER_ALREADY_ROUTED ]; then',
        '\t\tlog "Robot refused to route $FAILOVER_ADDRESS to $ACTIVE_SERVER_IP: HTTP ${code:-none} $error"',
        '\t\tdate +%s > "$ROBOT_FAILED_AT"',
        "\t\treturn 1",
        "\tfi",
        '\trm -f "$ROBOT_FAILED_AT"',
        '\thold_address "$FAILOVER_ADDRESS"',
        "}",
      ];
    },
    // The web service finds failover IPs and servers by address: nothing beyond the credentials.
    requiredEnv: () => [],
  },
  notes(model) {
    const ids = model.segments.map((s) => `${s.name} ${robotVlanId(model, s.name)}`).join(", ");
    return [
      `order one vSwitch per segment in Robot, with these VLAN ids, and add every server of the segment's roles to it: ${ids}`,
      `failover IPs are switched through the Robot web service, which allows about ${ROBOT_SWITCHES_PER_HOUR} switches an hour (reported): a switch is no health check; a refused switch is tried again every ${ROBOT_RETRY_SPACING_SECONDS} s`,
      `the VLAN links ride on each server's main NIC with MTU ${ROBOT_VSWITCH_MTU}; a switch port admits at most ${ROBOT_MACS_PER_PORT} MAC addresses (one per server here: no bridged guests)`,
    ];
  },
});

/** The adapter, with what `npm run new-site` writes for a Robot site beyond the handed-over default. */
export const robotAdapter: ProviderAdapter = {
  ...adapter,
  scaffold: {
    ...adapter.scaffold,
    publicReason: "Hetzner brings no customer prefix to dedicated servers (no BYOIP); Robot failover IPs carry the proxy and NAT",
    // Bare metal has no virtio disk: each store names its data disk (the first-boot script refuses a wrong one).
    storage: "{ capacityGb: 2000, dataDisk: /dev/nvme1n1 } # replace with the stores' data disk (lsblk; a /dev/disk/by-id link is safer)",
    stackComment: () => [
      "Hetzner Robot: the failover IPs are switched and a silent peer is reset through the Robot web service,",
      "with the credentials of a web service user (Robot: Settings, Web service and app settings).",
    ],
    secrets: () => ["pulumi config set --secret standort:providerApiToken '<web service user>:<password>'"],
  },
};
