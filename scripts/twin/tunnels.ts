/**
 * The tunnel scenario of the pair twin: is the partner tunnel up in both
 * directions as rendered, does it carry only the two supernets, and is
 * partner traffic blocked (not sent in clear) while it is down?
 *
 * "Up" is shown, not assumed: the active firewall of each side holds the
 * WireGuard interface with a handshake, its AllowedIPs are exactly the peer's
 * supernet, and a connection from one site's storage host to the other's (the
 * replication path, TCP 22) is answered by that host's own sshd (its banner
 * names the host).
 */
import { performance } from "node:perf_hooks";
import type { SiteModel } from "../../lib/model/model";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";

export interface TunnelEntry {
  readonly tunnel: string;
  readonly from: string;
  readonly to: string;
  readonly up: boolean;
  /** The firewall of `from` holding the tunnel (its active member), if any. */
  readonly firewall?: string;
  /** Seconds since the last handshake at `from`'s end (WireGuard rekeys every 2 minutes), null: none. */
  readonly handshakeAgeSeconds: number | null;
  /** AllowedIPs of `from`'s end: must be exactly `to`'s supernet. */
  readonly allowedIps: ReadonlyArray<string>;
  /** Who answered the replication probe from `from`'s storage host to `to`'s (sshd's banner), or what happened. */
  readonly answer: string;
}

export interface TunnelDownEntry {
  readonly tunnel: string;
  /** The side whose tunnel end was stopped (`systemctl stop wg-quick@…` on its active firewall). */
  readonly stoppedAt: string;
  /** The replication probe while the tunnel was down: blocked (no answer), or answered (a leak). */
  readonly blockedWhileDown: boolean;
  readonly whileDown: string;
  /** Packets for the peer's supernet the provider's network saw from this site meanwhile (sent in clear): must be 0. */
  readonly leakedPackets: number;
  /** Milliseconds from `systemctl start` until the probe was answered again; null: not within the bound. */
  readonly backAfterMs: number | null;
}

/** How long a tunnel may take to hand shake and answer (WireGuard retries a handshake every 5 s). */
export const TUNNEL_UP_BOUND_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function storageData(model: SiteModel): { host: string; address: string } {
  const host = model.hosts.find((h) => h.role === "storage")!;
  return { host: host.name, address: host.interfaces.find((i) => i.segment === "data")!.address };
}

/** The firewall of a site holding the tunnel interface, with its `wg show` facts. */
async function tunnelEnd(
  twin: SiteTwin,
  tunnel: string,
): Promise<{ firewall: string; handshakeAgeSeconds: number | null; allowedIps: string[] } | undefined> {
  for (const fw of twin.model.hosts.filter((h) => h.role === "firewall")) {
    if (!twin.isUp(fw.name)) continue;
    const r = await twin.machine(fw.name).exec(["sh", "-c", `wg show ${tunnel} latest-handshakes && wg show ${tunnel} allowed-ips`]);
    if (r.code !== 0) continue;
    const [handshakes, allowed] = r.stdout.trim().split("\n");
    const at = Number(handshakes?.split(/\s+/)[1] ?? 0);
    return {
      firewall: fw.name,
      handshakeAgeSeconds: at > 0 ? Math.max(0, Math.round(Date.now() / 1000 - at)) : null,
      allowedIps: (allowed?.split(/\s+/).slice(1) ?? []).filter(Boolean).sort(),
    };
  }
  return undefined;
}

/** One replication probe from `from`'s storage host to `to`'s: the answer, or what happened. */
async function replicationProbe(from: SiteTwin, to: SiteTwin, timeoutMs = 3_000): Promise<{ answered: boolean; by: string }> {
  const source = storageData(from.model);
  const target = storageData(to.model);
  const [o] = await from.probe(source.host, [
    { id: "replication", protocol: "tcp", source: source.address, target: target.address, port: 22, timeoutMs },
  ]);
  const own = to.model.hosts.filter((h) => h.role === "storage").map((h) => h.name);
  const by = own.find((h) => o.answer?.includes(` ${h}`));
  return { answered: o.result === "answered" && by !== undefined, by: by ?? `${o.result}${o.answer ? ` (${o.answer.trim()})` : ""}` };
}

/** Waits until the probe is answered; the time taken, or null past the bound. */
async function untilAnswered(from: SiteTwin, to: SiteTwin, boundMs = TUNNEL_UP_BOUND_MS): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < boundMs) {
    if ((await replicationProbe(from, to, 1_500)).answered) return Math.round(performance.now() - t0);
    await sleep(500);
  }
  return null;
}

/** Waits until the replication path crosses the tunnel (both firewalls' failover scripts have started it); ms, or null past the bound. */
export async function tunnelReady(pair: PairTwin): Promise<number | null> {
  return untilAnswered(pair.a, pair.b);
}

/** Both directions of the pair's tunnel: up, handshake, AllowedIPs, the replication path answered. */
export async function tunnelsUp(pair: PairTwin, log: (line: string) => void = () => undefined): Promise<TunnelEntry[]> {
  const name = pair.tunnel.plan.name;
  // Both ends come up with their firewalls' failover scripts; the first handshake may take a retry.
  await untilAnswered(pair.a, pair.b);
  const entries: TunnelEntry[] = [];
  for (const [from, to] of [
    [pair.a, pair.b],
    [pair.b, pair.a],
  ] as const) {
    const end = await tunnelEnd(from, name);
    const probe = await replicationProbe(from, to);
    const allowedIps = end?.allowedIps ?? [];
    const up =
      end !== undefined &&
      end.handshakeAgeSeconds !== null &&
      end.handshakeAgeSeconds <= 180 &&
      allowedIps.length === 1 &&
      allowedIps[0] === to.model.supernet &&
      probe.answered;
    entries.push({
      tunnel: name,
      from: from.model.name,
      to: to.model.name,
      up,
      ...(end ? { firewall: end.firewall } : {}),
      handshakeAgeSeconds: end?.handshakeAgeSeconds ?? null,
      allowedIps,
      answer: probe.by,
    });
    log(`${name} ${from.model.name} -> ${to.model.name}: ${up ? "up" : "DOWN"} (${end?.firewall ?? "no firewall holds it"}, ${probe.by})`);
  }
  return entries;
}

/**
 * Stops the tunnel at `side`'s active firewall as an operator would
 * (`systemctl stop wg-quick@<tunnel>`), probes the replication path (it must
 * not be answered: the firewall binds partner traffic to the tunnel, so it is
 * not sent over the internet in clear), starts it again and times the return.
 */
export async function tunnelDown(pair: PairTwin, side: SiteTwin, log: (line: string) => void = () => undefined): Promise<TunnelDownEntry> {
  const name = pair.tunnel.plan.name;
  const other = side === pair.a ? pair.b : pair.a;
  const end = await tunnelEnd(side, name);
  if (!end) throw new Error(`${side.model.name}: no firewall holds ${name}`);
  const fw = side.machine(end.firewall);
  // A counter in the provider's network: anything for the peer's supernet that leaves the site outside the tunnel.
  const provider = side.machine("provider");
  const table = `table ip twin_leak {\n\tchain f { type filter hook prerouting priority -300; ip daddr ${other.model.supernet} counter; }\n}\n`;
  await provider.run(["nft", "-f", "-"], { input: table });
  await fw.run(["systemctl", "stop", `wg-quick@${name}`]);
  const whileDown = await replicationProbe(side, other);
  const counted = await provider.run(["nft", "list", "table", "ip", "twin_leak"]);
  await provider.run(["nft", "delete", "table", "ip", "twin_leak"]);
  const leakedPackets = Number(/counter packets (\d+)/.exec(counted)?.[1] ?? "0");
  log(
    `${name} stopped at ${end.firewall}: replication probe ${whileDown.answered ? "ANSWERED" : `blocked (${whileDown.by})`}, ${leakedPackets} packets left in clear`,
  );
  await fw.run(["systemctl", "start", `wg-quick@${name}`]);
  const backAfterMs = await untilAnswered(side, other);
  log(`${name} started again at ${end.firewall}: answered after ${backAfterMs ?? "no answer within the bound"} ms`);
  return {
    tunnel: name,
    stoppedAt: side.model.name,
    blockedWhileDown: !whileDown.answered,
    whileDown: whileDown.by,
    leakedPackets,
    backAfterMs,
  };
}
