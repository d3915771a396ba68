/**
 * BIRD 2 on the firewalls of own-prefix sites routed by BGP: announce the own
 * /23 to the configured provider peers, and nothing else. BIRD learns nothing
 * and installs nothing, so no announcement can ever replace the default route.
 */
import { z } from "zod";
import type { SiteModel } from "../model/model";
import { cidr, containsAddress, parseAddress } from "../net/ipv4";
import { ProblemCollector } from "./errors";
import { ipv4Address } from "./inputs";
import { checkHost, pairOf } from "./interfaces";
import type { RenderOptions, RenderSecrets } from "./types";

const asn = z.number().refine((n) => Number.isInteger(n) && n >= 1 && n <= 4294967295, {
  error: (i) => `${String(i.input)} must be an AS number between 1 and 4294967295`,
});

/** BGP TCP-MD5 passwords: at most 80 bytes (Linux TCP_MD5SIG_MAXKEYLEN); no quote or backslash, which BIRD strings cannot hold plainly. */
const bgpPassword = z
  .string()
  .min(1, "must not be empty")
  .max(80, "must be at most 80 characters (TCP-MD5 key limit)")
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
  .refine((v) => !/["\\]/.test(v), "must not contain a quote or a backslash");

/** Times AS-path prepending on the passive firewall, so the peers prefer the active one while both announce. */
export const PASSIVE_PREPEND = 2;

/** The BIRD symbol of a peer: `peer_` and its name with dashes as underscores. */
export function birdPeerSymbol(peerName: string): string {
  return `peer_${peerName.replace(/-/g, "_")}`;
}

/**
 * Renders `/etc/bird/bird.conf` for a firewall host of an own-prefix site
 * routed by BGP. The VRRP master announces (keepalived's blackhole route of
 * the prefix is the origin); the site file's passive member prepends its AS
 * twice, so while both announce during a move the peers prefer the active one.
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderBirdConfig(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  if (host && host.role !== "firewall") problems.add("hostName", `${hostName} is a ${host.role} host: BIRD runs on the firewall pair`);
  const pub = model.public;
  if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") {
    problems.add(
      "public.routing",
      `${model.name} does not announce an own prefix by BGP: render BIRD only for own-prefix sites with routing kind bgp`,
    );
    problems.throwIfAny();
    return "";
  }
  const routing = pub.routing;
  const own = cidr(pub.prefix);
  const supernet = cidr(model.supernet);
  if (host && (!host.publicAddress || parseAddress(host.publicAddress) === undefined)) {
    problems.add(
      `hosts[${model.hosts.indexOf(host)}].publicAddress`,
      `${hostName} needs its provider address as BGP router id and session address`,
    );
  }
  problems.parse(asn, routing.localAsn, "public.routing.localAsn");
  if (routing.peers.length === 0) problems.add("public.routing.peers", "must list at least one BGP peer");
  const names = new Set<string>();
  routing.peers.forEach((peer, i) => {
    const at = `public.routing.peers[${i}]`;
    if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(peer.name))
      problems.add(`${at}.name`, `${JSON.stringify(peer.name)} must be lower-case letters, digits and dashes`);
    if (names.has(peer.name)) problems.add(`${at}.name`, `${peer.name} is listed twice`);
    names.add(peer.name);
    problems.parse(asn, peer.asn, `${at}.asn`);
    const address = problems.parse(ipv4Address, peer.address, `${at}.address`);
    if (address !== undefined) {
      const a = parseAddress(address)!;
      if (containsAddress(own, a)) {
        problems.add(`${at}.address`, `${address} lies inside the own prefix ${pub.prefix}: a BGP peer must be a provider-side address`);
      } else if (containsAddress(supernet, a)) {
        problems.add(
          `${at}.address`,
          `${address} lies inside the site's supernet ${model.supernet}: a BGP peer must be a provider-side address`,
        );
      } else if (host && address === host.publicAddress) {
        problems.add(`${at}.address`, `${address} is ${hostName}'s own address`);
      }
    }
    const password = secrets.bgp?.[peer.name];
    if (password === undefined) problems.add(`secrets.bgp.${peer.name}`, `is required: every BGP session is password-protected`);
    else problems.parse(bgpPassword, password, `secrets.bgp.${peer.name}`);
  });
  problems.throwIfAny();

  const passive = pairOf(model, hostName)?.passive === hostName;
  const prepend = passive ? Array.from({ length: PASSIVE_PREPEND }, () => `\t\tbgp_path.prepend(${routing.localAsn});`) : [];
  const lines = [
    `# standort: BIRD of ${hostName} (${passive ? "passive" : "active"} firewall of ${model.name}). Rendered from ${model.file}; do not edit.`,
    `router id ${host!.publicAddress};`,
    "log syslog all;",
    "",
    "# Interface state, needed to reach directly connected peers.",
    "protocol device {",
    "}",
    "",
    "# Origin of the announcement: the own prefix as a blackhole route that keepalived adds on the VRRP master",
    "# (virtual_routes) and removes when the member stands by, so the announcement follows the pair's state:",
    "# only the master announces. BIRD learns that one route from the kernel and installs none, so it can",
    "# never replace the provider's default route.",
    "protocol kernel {",
    "\tipv4 {",
    `\t\timport where net = ${pub.prefix};`,
    "\t\texport none;",
    "\t};",
    "\tlearn;",
    "\tscan time 1;",
    "}",
    "",
    "# Only the own prefix leaves; anything else is rejected.",
    "filter export_own_prefix {",
    `\tif net = ${pub.prefix} then {`,
    ...(passive ? ["\t\t# Passive member: a longer path, so the peers prefer the active member."] : []),
    ...prepend,
    "\t\taccept;",
    "\t}",
    "\treject;",
    "}",
  ];
  for (const peer of routing.peers) {
    lines.push(
      "",
      `protocol bgp ${birdPeerSymbol(peer.name)} {`,
      `\tdescription "${peer.name}";`,
      `\tlocal ${host!.publicAddress} as ${routing.localAsn};`,
      `\tneighbor ${peer.address} as ${peer.asn};`,
      `\tpassword "${secrets.bgp![peer.name]}";`,
      "\t# Short timers: a dead firewall's announcement is withdrawn within 9 s.",
      "\thold time 9;",
      "\tkeepalive time 3;",
      "\tipv4 {",
      "\t\t# Learn nothing from the peer.",
      "\t\timport none;",
      "\t\texport filter export_own_prefix;",
      "\t};",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}
