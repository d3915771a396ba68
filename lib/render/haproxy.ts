/**
 * HAProxy for the proxy pair. Frontends bind to any address, so whichever
 * member holds the VIP (or the provider failover IP) receives the traffic
 * without a reload. TLS is passed through by SNI in `mode tcp`, so the proxy
 * holds no certificates; port 80 redirects to HTTPS.
 */
import type { SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { checkServices } from "./inputs";
import { addressIn, checkHost } from "./interfaces";
import { HAPROXY_STATS_PORT, MONITORING_PORTS } from "./policy";
import { DEFAULT_SERVICES, ProxiedService, RenderOptions } from "./types";

/** Peak concurrent client connections the mission states (700–800); sizing uses the top of the range. */
export const PEAK_CONCURRENT_CONNECTIONS = 800;
/** Headroom over the peak: bursts, slow clients holding sockets, and one member carrying both members' load after a takeover. */
export const CONNECTION_HEADROOM = 4;

/**
 * Global `maxconn`: the peak times the headroom, rounded up to a power of two
 * (800 × 4 = 3200 → 4096). HAProxy derives its file descriptor limit from it
 * (about two descriptors per connection), which a default systemd unit allows.
 */
export function haproxyMaxconn(peak = PEAK_CONCURRENT_CONNECTIONS, headroom = CONNECTION_HEADROOM): number {
  return 2 ** Math.ceil(Math.log2(peak * headroom));
}

/** The health check on every backend server: every 2 s, down after 3 failures, up after 2 successes. */
export const SERVER_CHECK = "check inter 2s fall 3 rise 2";

/**
 * SNI routing lines: exact names first (for every service), then wildcards
 * (`*.example.org` matches any name ending in `.example.org`), so an exact
 * name always wins over a wildcard of another service.
 */
function sniRules(services: ReadonlyArray<ProxiedService>): string[] {
  const exact = services.flatMap((s) => {
    const names = s.hostnames.filter((h) => !h.startsWith("*."));
    return names.length > 0 ? [`\tuse_backend svc_${s.name} if { req_ssl_sni -i ${names.join(" ")} }`] : [];
  });
  const wildcard = services.flatMap((s) => {
    const suffixes = s.hostnames.filter((h) => h.startsWith("*.")).map((h) => h.slice(1));
    return suffixes.length > 0 ? [`\tuse_backend svc_${s.name} if { req_ssl_sni -m end -i ${suffixes.join(" ")} }`] : [];
  });
  return [...exact, ...wildcard];
}

/** The web frontends (80 redirects to HTTPS, 443 routes by SNI) and one backend per service. */
function serviceLines(services: ReadonlyArray<ProxiedService>, backends: ReadonlyArray<{ name: string; address?: string }>): string[] {
  const defaultService = services.find((s) => s.hostnames.length === 0) ?? services[0];
  const lines = [
    "# Bound to any address: the member that takes over the VIP receives traffic at once.",
    "frontend http",
    "\tbind :80",
    "\tmode http",
    "\toption httplog",
    "\ttimeout http-request 10s",
    "\thttp-request redirect scheme https code 301",
    "",
    "frontend https",
    "\tbind :443",
    "\tmode tcp",
    "\ttcp-request inspect-delay 5s",
    "\ttcp-request content accept if { req_ssl_hello_type 1 }",
    ...sniRules(services),
    `\tdefault_backend svc_${defaultService.name}`,
  ];
  for (const service of services) {
    lines.push(
      "",
      `backend svc_${service.name}`,
      "\tmode tcp",
      "\tbalance leastconn",
      ...backends.map((b) => `\tserver ${b.name} ${b.address}:${service.port} ${SERVER_CHECK}`),
    );
  }
  return lines;
}

/** What stands where the web frontends would: a site with no service listens on neither 80 nor 443. */
function noServiceLines(model: SiteModel): string[] {
  return [
    `# ${model.name} answers no service of the footprint (sites/footprint.yaml): nothing listens on 80 or 443`,
    "# until a service is placed here; the stats endpoint below is the health check.",
  ];
}

/**
 * Renders `/etc/haproxy/haproxy.cfg` for a proxy host. Backends are the
 * site's virtualization hosts (app addresses) on each service's port.
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderHaproxyConfig(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  const services = checkServices(options.services ?? DEFAULT_SERVICES, problems);
  if (host && host.role !== "proxy") problems.add("hostName", `${hostName} is a ${host.role} host: HAProxy runs on the proxy pair`);
  const mgmt = host ? addressIn(host, "mgmt") : undefined;
  if (host && !mgmt) problems.add("hosts.interfaces", `${hostName} has no mgmt address to bind the stats endpoint to`);
  const backends = model.hosts
    .filter((h) => h.role === "virtualization")
    .sort((a, b) => a.ordinal - b.ordinal)
    .map((h) => ({ name: h.name, address: addressIn(h, "app") }));
  if (backends.length === 0) problems.add("hosts", "the site has no virtualization host to send traffic to");
  backends.forEach((b) => {
    if (!b.address) problems.add("hosts", `${b.name} has no app address`);
  });
  problems.throwIfAny();

  const list = services!;
  const maxconn = haproxyMaxconn();
  const lines = [
    `# standort: HAProxy of ${hostName} (proxy pair of ${model.name}). Rendered from ${model.file}; do not edit.`,
    `# maxconn ${maxconn} = next power of two of peak ${PEAK_CONCURRENT_CONNECTIONS} concurrent connections x headroom ${CONNECTION_HEADROOM}.`,
    "global",
    "\tlog /dev/log local0",
    "\tlog /dev/log local1 notice",
    "\tchroot /var/lib/haproxy",
    "\tstats socket /run/haproxy/admin.sock mode 660 level admin",
    "\tstats timeout 30s",
    "\tuser haproxy",
    "\tgroup haproxy",
    "\tdaemon",
    `\tmaxconn ${maxconn}`,
    "",
    "defaults",
    "\tlog global",
    "\tmode tcp",
    "\toption tcplog",
    "\toption dontlognull",
    "\ttimeout connect 5s",
    "\ttimeout client 60s",
    "\ttimeout server 60s",
    "\t# Long-lived upgraded connections (WebSocket) through the TLS pass-through.",
    "\ttimeout tunnel 1h",
    "\ttimeout client-fin 10s",
    "\ttimeout queue 30s",
    "",
    // A site that answers no service yet routes nothing: no frontend on 80 or 443, no backend; the stats endpoint stays (the health check reads it).
    ...(list.length === 0 ? noServiceLines(model) : serviceLines(list, backends)),
  ];
  lines.push(
    "",
    "# Stats only on this host's mgmt address; the packet filter admits the mgmt segment and the allowlist.",
    "frontend stats",
    `\tbind ${mgmt}:${HAPROXY_STATS_PORT}`,
    "\tmode http",
    "\tstats enable",
    "\tstats uri /",
    "\tstats refresh 10s",
    "",
    "# HAProxy's built-in Prometheus exporter, for the site's Prometheus (mgmt address only).",
    "frontend prometheus",
    `\tbind ${mgmt}:${MONITORING_PORTS.haproxyExporter}`,
    "\tmode http",
    "\tno log",
    "\thttp-request use-service prometheus-exporter if { path /metrics }",
  );
  return lines.join("\n") + "\n";
}
