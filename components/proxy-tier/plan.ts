/**
 * The proxy tier as data the HAProxy renderer consumes: where it listens,
 * which backends serve which service, how they are health-checked, and how
 * many connections it is sized for. Pure.
 */
import { HostModel } from "../../lib/model/model";
import { CONNECTION_HEADROOM, PEAK_CONCURRENT_CONNECTIONS, SERVER_CHECK, haproxyMaxconn } from "../../lib/render/haproxy";
import { HAPROXY_STATS_PORT } from "../../lib/render/policy";
import { DEFAULT_SERVICES, ProxiedService } from "../../lib/render/types";

/** The load the tier is sized for. */
export interface ProxyLoad {
  /** Concurrent client connections at peak. */
  readonly peakConcurrent: number;
  readonly requestsPerDay: number;
  /** Peak request rate over the daily average. */
  readonly peakToAverage: number;
  /** Spare capacity over the peak (bursts, slow clients, one member carrying both members' load). */
  readonly headroom: number;
}

/**
 * The mission's peak: 700–800 concurrent connections, 2–3 million requests a
 * day (upper ends); peak and headroom are the HAProxy renderer's, so the
 * data here and the rendered configuration agree.
 */
export const MISSION_LOAD: ProxyLoad = {
  peakConcurrent: PEAK_CONCURRENT_CONNECTIONS,
  requestsPerDay: 3_000_000,
  peakToAverage: 4,
  headroom: CONNECTION_HEADROOM,
};

export interface ProxySizing {
  readonly load: ProxyLoad;
  readonly averageRequestsPerSecond: number;
  readonly peakRequestsPerSecond: number;
  /** HAProxy `global maxconn` as rendered: the peak times the headroom, rounded up to a power of two. */
  readonly globalMaxconn: number;
  /** Open files the process needs (client and server side of every connection). */
  readonly fileDescriptors: number;
  /** Concurrent connections each backend must carry at peak with one backend down. */
  readonly perBackendAtPeakOneDown: number;
  readonly timeouts: {
    readonly connectMs: number;
    readonly clientMs: number;
    readonly serverMs: number;
    readonly queueMs: number;
    readonly tunnelMs: number;
  };
}

/** Sizes the tier for `load` over `backends` backend servers. */
export function proxySizing(load: ProxyLoad, backends: number): ProxySizing {
  if (backends < 1) throw new Error("the proxy tier needs at least one backend");
  const average = load.requestsPerDay / 86_400;
  const globalMaxconn = haproxyMaxconn(load.peakConcurrent, load.headroom);
  return {
    load,
    averageRequestsPerSecond: Math.ceil(average),
    peakRequestsPerSecond: Math.ceil(average * load.peakToAverage),
    globalMaxconn,
    fileDescriptors: 2 * globalMaxconn,
    perBackendAtPeakOneDown: Math.ceil(load.peakConcurrent / Math.max(1, backends - 1)),
    timeouts: { connectMs: 5_000, clientMs: 60_000, serverMs: 60_000, queueMs: 30_000, tunnelMs: 3_600_000 },
  };
}

export interface HealthCheck {
  /** A TCP connect check: TLS passes through to the backends, so the proxy cannot look inside. */
  readonly kind: "tcp-connect";
  readonly intervalMs: number;
  /** Consecutive successes before a backend takes traffic again. */
  readonly rise: number;
  /** Consecutive failures before a backend is taken out. */
  readonly fall: number;
  /** The HAProxy server options the renderer writes. */
  readonly directive: string;
}

export const HEALTH_CHECK: HealthCheck = { kind: "tcp-connect", intervalMs: 2_000, rise: 2, fall: 3, directive: SERVER_CHECK };

export interface BackendServer {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly check: HealthCheck;
}

export interface ProxyPlan {
  /**
   * Listening sockets: any address, so a member serves whatever failover
   * address it holds without a restart or non-local binds on takeover.
   */
  readonly binds: ReadonlyArray<{ readonly address: string; readonly port: number }>;
  readonly services: ReadonlyArray<ProxiedService & { readonly servers: ReadonlyArray<BackendServer> }>;
  readonly sizing: ProxySizing;
  /** The stats endpoint, on each proxy's mgmt address only. */
  readonly stats: { readonly port: number; readonly addresses: Readonly<Record<string, string>> };
}

export const ANY_ADDRESS = "0.0.0.0";

/** The proxy tier of a site: every service on every backend host's app address. */
export function proxyPlan(
  proxies: ReadonlyArray<HostModel>,
  backends: ReadonlyArray<HostModel>,
  services: ReadonlyArray<ProxiedService> = DEFAULT_SERVICES,
  load: ProxyLoad = MISSION_LOAD,
): ProxyPlan {
  const sizing = proxySizing(load, backends.length);
  const appAddress = (h: HostModel) => {
    const a = h.interfaces.find((i) => i.segment === "app")?.address;
    if (!a) throw new Error(`${h.name} has no address in the app segment: it cannot be a backend`);
    return a;
  };
  // Ordinal order, as the renderer lists its servers (hel-virt-2 before hel-virt-10).
  const sorted = [...backends].sort((a, b) => a.ordinal - b.ordinal);
  return {
    // A site that answers no service yet binds nothing but its stats endpoint (lib/render/haproxy.ts).
    binds: services.length === 0 ? [] : [80, 443].map((port) => ({ address: ANY_ADDRESS, port })),
    services: services.map((s) => ({
      ...s,
      servers: sorted.map((h) => ({ name: h.name, address: appAddress(h), port: s.port, check: HEALTH_CHECK })),
    })),
    sizing,
    stats: {
      port: HAPROXY_STATS_PORT,
      addresses: Object.fromEntries(proxies.map((p) => [p.name, p.interfaces.find((i) => i.segment === "mgmt")?.address ?? ""])),
    },
  };
}
