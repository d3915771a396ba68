/**
 * Customers' load on a booted twin, for the failover and partition
 * scenarios: which load exercises which pair, starting and stopping it, and
 * the figures of a time window (requests, failures, longest gap).
 *
 * The firewall and proxy pairs carry the web: HTTPS from the internet to the
 * site's public address with a service's name. The storage pair carries what
 * the applications mount: connections from a virtualization host's app
 * address to the storage address (the NFS port).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { PairModel } from "../../lib/model/model";
import { NFS_PORT, publicWebDnat } from "../../lib/render/policy";
import { STREAM_PORT } from "../../lib/twin/world";
import { startUnit } from "./init";
import type { SiteTwin } from "./site";

/**
 * A request as the load client recorded it: start and end (epoch ms), 1 when it succeeded (0 failed; for
 * streams -1: the connection broke), and for streams the stream's index.
 */
export type LoadRecord = [number, number, number] | [number, number, number, number];

export interface Load {
  /** What the load does, for reports. */
  readonly what: string;
  /** Stops the clients and returns every request they made. */
  stop(): Promise<LoadRecord[]>;
}

/** Clients of the web load (the peak the mission states) and of the storage load. */
export const WEB_CLIENTS = 800;
export const STORAGE_CLIENTS = 200;
/** Long-lived connections through the firewall pair's outbound NAT (issue: a firewall takeover keeps them). */
export const STREAMS = 100;

interface Target {
  readonly machine: string;
  readonly source: string;
  readonly address: string;
  readonly port: number;
  readonly mode: "https" | "nfs" | "stream";
  readonly sni?: string;
  readonly clients: number;
  readonly what: string;
}

/**
 * Long-lived streams through the firewall pair: from a virtualization host's app address to the echo server
 * on the internet, out through the outbound NAT.
 */
export function streamTarget(twin: SiteTwin, clients = STREAMS): Target {
  const virt = twin.model.hosts.find((h) => h.role === "virtualization")!;
  const source = virt.interfaces.find((i) => i.segment === "app")!.address;
  return {
    machine: virt.name,
    source,
    address: twin.world.streamServer,
    port: STREAM_PORT,
    mode: "stream",
    clients,
    what: `${clients} long-lived streams from ${virt.name} to ${twin.world.streamServer}:${STREAM_PORT} through the outbound NAT`,
  };
}

/**
 * Streams open when an event happened (`from`: echoed before it, not broken), and of those the ones that
 * still work after it: unbroken, with an echo of a line sent at or after `after` (the path is back) and
 * before `to`.
 */
export function streamFigures(
  records: ReadonlyArray<LoadRecord>,
  from: number,
  after: number,
  to: number,
): { streamsOpen: number; streamsKept: number } {
  const streams = records.filter((r): r is [number, number, number, number] => r.length === 4);
  const broke = new Set(streams.filter((r) => r[2] === -1 && r[0] < from).map((r) => r[3]));
  const open = new Set(streams.filter((r) => r[2] === 1 && r[1] < from && !broke.has(r[3])).map((r) => r[3]));
  const brokeLater = new Set(streams.filter((r) => r[2] === -1 && r[0] >= from && r[0] < to).map((r) => r[3]));
  const working = new Set(streams.filter((r) => r[2] === 1 && r[0] >= after && r[1] < to).map((r) => r[3]));
  const kept = [...open].filter((s) => !brokeLater.has(s) && working.has(s));
  return { streamsOpen: open.size, streamsKept: kept.length };
}

/** The load that goes through `pair`. */
export function loadTarget(twin: SiteTwin, pair: PairModel, clients?: number): Target {
  if (pair.role === "storage") {
    const virt = twin.model.hosts.find((h) => h.role === "virtualization")!;
    const source = virt.interfaces.find((i) => i.segment === "app")!.address;
    const address = pair.vips.find((v) => v.segment === "data")!.address;
    const n = clients ?? STORAGE_CLIENTS;
    return {
      machine: virt.name,
      source,
      address,
      port: NFS_PORT,
      // The real NFS server (nfs-ganesha) answers RPC, not a line: each request is an NFSv4 NULL call.
      mode: "nfs",
      clients: n,
      what: `${n} clients on ${virt.name} to ${address}:${NFS_PORT}`,
    };
  }
  const pub = twin.model.public;
  const address =
    publicWebDnat(twin.model)?.address ??
    (pub.mode === "provider-failover-ips" ? (pub.declared?.proxy ?? twin.world.failoverIps?.proxy) : undefined);
  const service = [...twin.services].sort((a, b) => a.port - b.port).find((s) => s.hostnames.some((h) => !h.startsWith("*.")));
  if (!address || !service) throw new Error(`${twin.model.name}: no public address or service to send load to`);
  const sni = service.hostnames.find((h) => !h.startsWith("*."))!;
  const n = clients ?? WEB_CLIENTS;
  return {
    machine: "internet",
    source: twin.world.internetClient,
    address,
    port: 443,
    mode: "https",
    sni,
    clients: n,
    what: `${n} clients, HTTPS for ${sni}`,
  };
}

/**
 * Waits (at most `timeoutMs`) until the target answers one request: the
 * service is back from whatever came before (a split brain can leave a
 * router's ARP cache pointing at the member that gave the address up), so a
 * measurement starts from a site that serves. Returns the time waited, or
 * null when it never answered.
 */
export async function waitServed(twin: SiteTwin, target: Target, timeoutMs = 60_000): Promise<number | null> {
  const from = Date.now();
  while (Date.now() - from < timeoutMs) {
    const [outcome] = await twin.probe(target.machine, [
      {
        id: "served",
        protocol: target.mode === "https" ? "tls" : "tcp",
        source: target.source,
        target: target.address,
        port: target.port,
        ...(target.sni ? { sni: target.sni } : {}),
        timeoutMs: 2_000,
      },
    ]);
    if (outcome.result === "answered") return Date.now() - from;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return null;
}

/** Starts a load (one request a second per client, 2 s timeout) and resolves once every client has started. */
export async function startLoad(twin: SiteTwin, target: Target, name: string): Promise<Load> {
  const out = join(twin.dir, `${name}.jsonl`);
  const started = await startUnit(
    twin.machine(target.machine),
    {
      name,
      // 800 connections need more descriptors than the usual soft limit of 1024: raise it to the hard limit.
      prepare: ['ulimit -n "$(ulimit -Hn)"'],
      argv: [
        ...["node", "--import", "tsx", join(__dirname, "load.ts")],
        ...["--target", target.address, "--port", String(target.port), "--source", target.source, "--mode", target.mode],
        ...(target.sni ? ["--sni", target.sni] : []),
        ...["--clients", String(target.clients), "--duration-ms", String(3_600_000), "--out", out],
      ],
      readyLine: "ready",
    },
    60_000,
  );
  const exited = new Promise<void>((resolve) => started.process.once("exit", () => resolve()));
  return {
    what: target.what,
    async stop() {
      started.process.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      let text = "";
      try {
        text = readFileSync(out, "utf8");
      } catch {
        text = "";
      }
      rmSync(out, { force: true });
      return text
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LoadRecord);
    },
  };
}

/** Requests, failures and the longest gap between successful responses in [from, to) (epoch ms). */
export function windowFigures(
  records: ReadonlyArray<LoadRecord>,
  from: number,
  to: number,
): { requests: number; failed: number; gapMs: number } {
  const inWindow = records.filter((r) => r[0] >= from && r[0] < to && r[2] !== -1);
  const ends = records
    .filter((r) => r[2] === 1 && r[1] >= from && r[1] < to)
    .map((r) => r[1])
    .sort((a, b) => a - b);
  const points = [from, ...ends, to];
  let gap = 0;
  for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i] - points[i - 1]);
  return { requests: inWindow.length, failed: inWindow.filter((r) => r[2] === 0).length, gapMs: gap };
}
