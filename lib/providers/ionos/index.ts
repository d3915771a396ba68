/**
 * IONOS Cloud: servers are handed over (its Pulumi provider is not on the
 * registries reachable here); failover IPs belong to a LAN's IP failover
 * group, which the member that takes over points at its own NIC through the
 * Cloud API v6 (`PATCH /cloudapi/v6/datacenters/{dc}/lans/{lan}` with
 * `ipFailover`). The data center, the LAN and each member's NIC come from the
 * stack's `providerEnv`; each host receives only its own NIC id.
 */
import { handedOverAdapter } from "../handed-over";

/** The stack's `providerEnv` key that holds one host's IONOS NIC uuid: `IONOS_NIC_ID_<HOST>` (upper case, `_` for `-`). */
export function ionosNicKey(hostName: string): string {
  return `IONOS_NIC_ID_${hostName.toUpperCase().replace(/-/g, "_")}`;
}

const base = { id: "ionos", operator: "ionos", label: "ionos", displayName: "IONOS" } as const;
const common = handedOverAdapter(base);

export const ionosAdapter = handedOverAdapter(base, {
  failover: {
    moveAddress: (model, move, c) =>
      move.kind !== "failover-ip"
        ? common.failover.moveAddress(model, move, c)
        : [
            ...c.uplink,
            ...c.addressLine,
            "# IONOS: point the LAN's IP failover group at this server's NIC (ids from provider.env).",
            "move_failover_address() {",
            "\tfor v in FAILOVER_ADDRESS IONOS_DATACENTER_ID IONOS_LAN_ID IONOS_NIC_ID PROVIDER_API_TOKEN; do",
            '\t\teval "[ -n \\"\\${$v:-}\\" ]" || { log "$PROVIDER_ENV_FILE lacks $v: cannot move the failover address"; return 1; }',
            "\tdone",
            "\t# The token goes to curl on its standard input (a config line), never on a command line.",
            '\tprintf \'header = "Authorization: Bearer %s"\\n\' "$PROVIDER_API_TOKEN" | curl -fsS --max-time 15 -K - -X PATCH -H "Content-Type: application/json" \\',
            '\t\t-d "{\\"ipFailover\\":[{\\"ip\\":\\"$FAILOVER_ADDRESS\\",\\"nicUuid\\":\\"$IONOS_NIC_ID\\"}]}" \\',
            '\t\t"https://api.ionos.com/cloudapi/v6/datacenters/$IONOS_DATACENTER_ID/lans/$IONOS_LAN_ID" >/dev/null || return 1',
            '\thold_address "$FAILOVER_ADDRESS"',
            "}",
          ],
    requiredEnv: (model, moving) =>
      moving.length > 0 && moving.every((p) => p.move.kind === "failover-ip")
        ? ["IONOS_DATACENTER_ID", "IONOS_LAN_ID", ...moving.flatMap((p) => p.members).map(ionosNicKey)]
        : common.failover.requiredEnv(model, moving),
    hostEnv: (hostName, env) => {
      const own = ionosNicKey(hostName);
      return Object.fromEntries(
        Object.entries(env)
          .filter(([k]) => !k.startsWith("IONOS_NIC_ID_") || k === own)
          .map(([k, v]) => [k === own ? "IONOS_NIC_ID" : k, v]),
      );
    },
  },
  // new-site: placeholders for the data center, the LAN and each member's NIC, and where their uuids are found.
  scaffold: {
    stackComment: (requiredEnv) =>
      requiredEnv.includes("IONOS_DATACENTER_ID")
        ? [
            "IONOS moves the failover IPs of the LAN's IP failover group to the NIC of the member that takes over",
            "(PATCH /cloudapi/v6/datacenters/{dc}/lans/{lan}, ipFailover). Placeholders: replace them with the",
            "data center, LAN and NIC uuids of the ordered servers (IONOS DCD, or GET /datacenters/{dc}/servers).",
          ]
        : common.scaffold.stackComment(requiredEnv),
    envPlaceholder: (key) => {
      if (key === "IONOS_DATACENTER_ID") return "replace-with-the-data-center-uuid";
      if (key === "IONOS_LAN_ID") return '"replace-with-the-lan-id"';
      const nic = /^IONOS_NIC_ID_(.+)$/.exec(key);
      if (nic) return `replace-with-the-nic-uuid-of-${nic[1].toLowerCase().replace(/_/g, "-")}`;
      return common.scaffold.envPlaceholder(key);
    },
  },
});
