/**
 * Links between twin machines: veth pairs across namespaces, and `ip` and
 * `sysctl` run in a namespace. Every call throws with the command's stderr.
 */
import { must } from "./machine";

/** Runs `ip` in a network namespace. */
export function ipIn(ns: string, ...args: string[]): void {
  must(["ip", "-n", ns, ...args]);
}

/** Sets kernel settings of a network namespace. */
export function sysctlIn(ns: string, ...settings: string[]): void {
  for (const s of settings) must(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", s]);
}

/**
 * A veth pair between two namespaces (`nsA:nameA` ↔ `nsB:nameB`). With
 * `layer3`, both ends take one MAC and skip ARP, so frames are always for
 * "us": a point-to-point link without neighbours, as a WireGuard tunnel is.
 */
export function veth(nsA: string, nameA: string, nsB: string, nameB: string, options: { layer3?: boolean } = {}): void {
  must(["ip", "link", "add", nameA, "netns", nsA, "type", "veth", "peer", "name", nameB, "netns", nsB]);
  if (options.layer3) {
    const mac = `02:${[...Array(5)]
      .map(() =>
        Math.floor(Math.random() * 256)
          .toString(16)
          .padStart(2, "0"),
      )
      .join(":")}`;
    ipIn(nsA, "link", "set", nameA, "address", mac, "arp", "off");
    ipIn(nsB, "link", "set", nameB, "address", mac, "arp", "off");
  }
}
