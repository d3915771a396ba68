/**
 * The provider APIs the rendered failover scripts call, as one stand-in
 * HTTPS server inside the twin's `internet` machine (the real API names
 * resolve to it there, and the twin's CA signs its certificate). It keeps the
 * provider's state (servers, floating and failover IPs, alias IPs), refuses
 * what the real API refuses, records every call (without the token) to
 * `--record`, and announces each effect on the network as a JSON line on
 * stdout, which the twin applies to the provider's routers:
 *
 *   {"effect":"route","ip":"198.19.91.10","host":"hel-proxy-2"}     a failover/floating IP now goes to host
 *   {"effect":"aliases","host":"hel-fw-2","ips":["10.40.1.1",…]}   the private network delivers these to host
 *   {"effect":"poweroff","host":"hel-fw-1"}                         hard power-off (fencing)
 *
 * Hetzner Cloud (docs.hetzner.cloud): GET /v1/servers?name=, GET /v1/floating_ips?name=,
 * GET /v1/networks?name=, POST /v1/servers/{id}/actions/poweroff,
 * POST /v1/floating_ips/{id}/actions/assign {server},
 * POST /v1/servers/{id}/actions/change_alias_ips {network, alias_ips} (replaces the list; an
 * address another server holds as alias or IP is refused).
 * IONOS Cloud API v6: PATCH /cloudapi/v6/datacenters/{dc}/lans/{lan} {ipFailover:[{ip, nicUuid}]}.
 * Hetzner Robot web service (robot.hetzner.com/doc/webservice, HTTP basic auth with the web service user):
 * POST /failover/{ip} active_server_ip=… (routes the failover IP to that server's main IP; 404
 * FAILOVER_NOT_FOUND / SERVER_NOT_FOUND, 409 FAILOVER_ALREADY_ROUTED, 403 RATE_LIMIT_EXCEEDED after
 * `switchesPerHour` switches in an hour, reported ≈ 50), POST /reset/{server-ip} type=… (power_long: forced off;
 * 400 INVALID_INPUT for an unknown type).
 * Netcup has no API the library drives: the operator's FAILOVER_MOVE_COMMAND stand-in posts
 * POST /twin/netcup/route {ip, host}, as Netcup's SCP changeIPRouting would route a failover IP, and is
 * refused (429) when the same address moved less than `minIntervalSeconds` ago (reported: 5 minutes).
 *
 *   node --import tsx scripts/twin/provider-api.ts --state FILE --cert FILE --key FILE --listen ADDRESS [--port 443] --record FILE
 */
import { appendFileSync, readFileSync } from "node:fs";
import { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import { parseArgs } from "node:util";
import { ROBOT_API_NAME } from "../../lib/twin/world";

/** The stand-in's starting state, written by the twin. */
export interface ProviderState {
  readonly token: string;
  readonly hcloud?: {
    readonly network: { readonly id: number; readonly name: string; readonly ipRange: string };
    readonly servers: ReadonlyArray<{
      readonly id: number;
      readonly name: string;
      readonly ip: string;
      readonly aliasIps: ReadonlyArray<string>;
    }>;
    readonly floatingIps: ReadonlyArray<{ readonly id: number; readonly name: string; readonly ip: string; readonly server: number }>;
  };
  readonly ionos?: {
    readonly datacenter: string;
    readonly lan: string;
    /** NIC uuid → host name. */
    readonly nics: Readonly<Record<string, string>>;
  };
  /** Hetzner Robot: the web service user (`user:password`), servers by main IP, failover IPs → active server's main IP. */
  readonly robot?: {
    readonly credentials: string;
    /** Main IP → host name. */
    readonly servers: Readonly<Record<string, string>>;
    readonly failoverIps: Readonly<Record<string, string>>;
    readonly switchesPerHour: number;
  };
  /** Addresses whose routing the operator's command moves (Netcup), and how often one may move (seconds). */
  readonly netcup?: {
    readonly hosts: ReadonlyArray<string>;
    readonly ips: ReadonlyArray<string>;
    readonly minIntervalSeconds: number;
    /** Where each address is routed at the start (the operator's order). */
    readonly routes: Readonly<Record<string, string>>;
  };
}

const { values } = parseArgs({
  options: {
    state: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    listen: { type: "string" },
    port: { type: "string", default: "443" },
    record: { type: "string" },
  },
});
const state = JSON.parse(readFileSync(values.state!, "utf8")) as ProviderState;
const servers = state.hcloud?.servers.map((s) => ({ ...s, aliasIps: [...s.aliasIps] })) ?? [];
const floating = state.hcloud?.floatingIps.map((f) => ({ ...f })) ?? [];
/** When each Netcup failover IP last moved (epoch ms). */
const netcupMoved = new Map<string, number>();
const netcupRoutes = new Map<string, string>(Object.entries(state.netcup?.routes ?? {}));

function effect(e: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

function record(req: IncomingMessage, status: number, body: string): void {
  appendFileSync(
    values.record!,
    `${JSON.stringify({ at: Date.now(), method: req.method, url: req.url, status, body: body.slice(0, 2_000) })}\n`,
  );
}

function send(res: ServerResponse, status: number, payload: unknown): number {
  const text = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
  return status;
}

const hcloudError = (res: ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });
const action = (command: string) => ({ action: { id: Date.now(), command, status: "running", progress: 0, error: null } });

const ipToNumber = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
function inRange(ip: string, range: string): boolean {
  const [base, len] = range.split("/");
  const size = 2 ** (32 - Number(len));
  const start = ipToNumber(base);
  return ipToNumber(ip) >= start && ipToNumber(ip) < start + size;
}

function handleHcloud(req: IncomingMessage, res: ServerResponse, url: URL, body: string): number {
  if (!state.hcloud) return hcloudError(res, 404, "not_found", "no Hetzner Cloud project in this twin");
  const name = url.searchParams.get("name");
  const path = url.pathname.replace(/^\/v1/, "");
  if (req.method === "GET" && path === "/servers") {
    return send(res, 200, { servers: servers.filter((s) => !name || s.name === name).map((s) => ({ id: s.id, name: s.name })) });
  }
  if (req.method === "GET" && path === "/floating_ips") {
    return send(res, 200, {
      floating_ips: floating.filter((f) => !name || f.name === name).map((f) => ({ id: f.id, name: f.name, ip: f.ip, server: f.server })),
    });
  }
  if (req.method === "GET" && path === "/networks") {
    const n = state.hcloud.network;
    return send(res, 200, { networks: !name || n.name === name ? [{ id: n.id, name: n.name, ip_range: n.ipRange }] : [] });
  }
  const serverAction = /^\/servers\/(\d+)\/actions\/([a-z_]+)$/.exec(path);
  if (req.method === "POST" && serverAction) {
    const server = servers.find((s) => s.id === Number(serverAction[1]));
    if (!server) return hcloudError(res, 404, "not_found", `server ${serverAction[1]} not found`);
    if (serverAction[2] === "poweroff") {
      effect({ effect: "poweroff", host: server.name });
      return send(res, 201, action("stop_server"));
    }
    if (serverAction[2] === "change_alias_ips") {
      let parsed: { network?: unknown; alias_ips?: unknown };
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch {
        return hcloudError(res, 400, "json_error", "invalid JSON");
      }
      if (parsed.network !== state.hcloud.network.id)
        return hcloudError(res, 422, "invalid_input", "server is not attached to this network");
      const ips = parsed.alias_ips;
      if (!Array.isArray(ips) || ips.some((ip) => typeof ip !== "string"))
        return hcloudError(res, 422, "invalid_input", "alias_ips must be a list of IPs");
      for (const ip of ips as string[]) {
        if (!inRange(ip, state.hcloud.network.ipRange)) return hcloudError(res, 422, "invalid_input", `${ip} is outside the network`);
        const holder = servers.find((s) => s.id !== server.id && (s.ip === ip || s.aliasIps.includes(ip)));
        if (holder) return hcloudError(res, 409, "ip_not_available", `${ip} is already used by server ${holder.id}`);
        if (ip === server.ip) return hcloudError(res, 422, "invalid_input", `${ip} is the server's own IP in the network`);
      }
      server.aliasIps = [...(ips as string[])];
      effect({ effect: "aliases", host: server.name, ips: server.aliasIps });
      return send(res, 201, action("change_alias_ips"));
    }
    return hcloudError(res, 404, "not_found", `action ${serverAction[2]} is not implemented by the twin`);
  }
  const assign = /^\/floating_ips\/(\d+)\/actions\/assign$/.exec(path);
  if (req.method === "POST" && assign) {
    const fip = floating.find((f) => f.id === Number(assign[1]));
    if (!fip) return hcloudError(res, 404, "not_found", `floating IP ${assign[1]} not found`);
    let target: unknown;
    try {
      target = (JSON.parse(body) as { server?: unknown }).server;
    } catch {
      return hcloudError(res, 400, "json_error", "invalid JSON");
    }
    const server = servers.find((s) => s.id === target);
    if (!server) return hcloudError(res, 422, "invalid_input", `server ${String(target)} not found`);
    fip.server = server.id;
    effect({ effect: "route", ip: fip.ip, host: server.name });
    return send(res, 201, action("assign_floating_ip"));
  }
  return hcloudError(res, 404, "not_found", `${req.method} ${path} is not implemented by the twin`);
}

function handleIonos(req: IncomingMessage, res: ServerResponse, url: URL, body: string): number {
  const lan = /^\/cloudapi\/v6\/datacenters\/([^/]+)\/lans\/([^/]+)$/.exec(url.pathname);
  if (!state.ionos || req.method !== "PATCH" || !lan) return send(res, 404, { httpStatus: 404, messages: [{ message: "not found" }] });
  if (lan[1] !== state.ionos.datacenter || lan[2] !== state.ionos.lan) {
    return send(res, 404, { httpStatus: 404, messages: [{ message: `LAN ${lan[2]} in datacenter ${lan[1]} not found` }] });
  }
  let groups: Array<{ ip?: string; nicUuid?: string }>;
  try {
    groups = (JSON.parse(body) as { ipFailover?: typeof groups }).ipFailover ?? [];
  } catch {
    return send(res, 400, { httpStatus: 400, messages: [{ message: "invalid JSON" }] });
  }
  for (const g of groups) {
    const host = g.nicUuid ? state.ionos.nics[g.nicUuid] : undefined;
    if (!g.ip || !host)
      return send(res, 422, { httpStatus: 422, messages: [{ message: `NIC ${String(g.nicUuid)} is not in LAN ${lan[2]}` }] });
  }
  for (const g of groups) effect({ effect: "route", ip: g.ip, host: state.ionos.nics[g.nicUuid!] });
  return send(res, 202, { id: lan[2], properties: { ipFailover: groups } });
}

const robotRoutes = new Map<string, string>(Object.entries(state.robot?.failoverIps ?? {}));
/** When each accepted failover switch happened (epoch ms), for the hourly limit. */
const robotSwitches: number[] = [];
const robotError = (res: ServerResponse, status: number, code: string, message: string) =>
  send(res, status, { error: { status, code, message } });

function handleRobot(req: IncomingMessage, res: ServerResponse, url: URL, body: string): number {
  const robot = state.robot;
  if (!robot) return robotError(res, 404, "NOT_FOUND", "no Robot account in this twin");
  const expected = `Basic ${Buffer.from(robot.credentials, "utf8").toString("base64")}`;
  if (req.headers.authorization !== expected) return robotError(res, 401, "UNAUTHORIZED", "Unauthorized");
  const form = new URLSearchParams(body);
  const failover = /^\/failover\/([0-9.]+)$/.exec(url.pathname);
  if (req.method === "POST" && failover) {
    const ip = failover[1];
    const target = form.get("active_server_ip") ?? "";
    if (!robotRoutes.has(ip)) return robotError(res, 404, "FAILOVER_NOT_FOUND", `failover ${ip} not found`);
    if (!robot.servers[target]) return robotError(res, 404, "SERVER_NOT_FOUND", `server ${target} not found`);
    if (robotRoutes.get(ip) === target) return robotError(res, 409, "FAILOVER_ALREADY_ROUTED", `${ip} is already routed to ${target}`);
    const hourAgo = Date.now() - 3_600_000;
    while (robotSwitches.length > 0 && robotSwitches[0] < hourAgo) robotSwitches.shift();
    if (robotSwitches.length >= robot.switchesPerHour) return robotError(res, 403, "RATE_LIMIT_EXCEEDED", "rate limit exceeded");
    robotSwitches.push(Date.now());
    robotRoutes.set(ip, target);
    effect({ effect: "route", ip, host: robot.servers[target] });
    return send(res, 200, { failover: { ip, netmask: "255.255.255.255", server_ip: target, active_server_ip: target } });
  }
  const reset = /^\/reset\/([0-9.]+)$/.exec(url.pathname);
  if (req.method === "POST" && reset) {
    const host = robot.servers[reset[1]];
    if (!host) return robotError(res, 404, "SERVER_NOT_FOUND", `server ${reset[1]} not found`);
    const type = form.get("type") ?? "";
    if (!["sw", "hw", "man", "power", "power_long"].includes(type)) return robotError(res, 400, "INVALID_INPUT", "invalid input");
    // power_long holds the power button: the server is off; the others reboot it, which the twin does not need.
    if (type === "power_long") effect({ effect: "poweroff", host });
    return send(res, 200, { reset: { server_ip: reset[1], type } });
  }
  return robotError(res, 404, "NOT_FOUND", `${req.method} ${url.pathname} is not implemented by the twin`);
}

function handleNetcup(req: IncomingMessage, res: ServerResponse, body: string): number {
  if (!state.netcup) return send(res, 404, { error: "no Netcup site in this twin" });
  let parsed: { ip?: string; host?: string };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    return send(res, 400, { error: "invalid JSON" });
  }
  if (!parsed.ip || !state.netcup.ips.includes(parsed.ip))
    return send(res, 422, { error: `${String(parsed.ip)} is not a failover IP of this customer` });
  if (!parsed.host || !state.netcup.hosts.includes(parsed.host))
    return send(res, 422, { error: `${String(parsed.host)} is not a server of this customer` });
  // Routing an address where it already goes changes nothing, and costs nothing.
  if (netcupRoutes.get(parsed.ip) === parsed.host) return send(res, 200, { ok: true, unchanged: true });
  const last = netcupMoved.get(parsed.ip);
  const wait = last === undefined ? 0 : last + state.netcup.minIntervalSeconds * 1000 - Date.now();
  if (wait > 0) {
    return send(res, 429, {
      error: `${parsed.ip} was re-routed less than ${state.netcup.minIntervalSeconds} s ago: try again in ${Math.ceil(wait / 1000)} s`,
    });
  }
  netcupMoved.set(parsed.ip, Date.now());
  netcupRoutes.set(parsed.ip, parsed.host);
  effect({ effect: "route", ip: parsed.ip, host: parsed.host });
  return send(res, 200, { ok: true });
}

const server = createServer({ cert: readFileSync(values.cert!), key: readFileSync(values.key!) }, (req, res) => {
  let body = "";
  req.on("data", (c: Buffer) => (body += c.toString("utf8")));
  req.on("end", () => {
    const url = new URL(req.url ?? "/", `https://${req.headers.host ?? "api"}`);
    const auth = req.headers.authorization ?? "";
    let status: number;
    if (url.hostname === ROBOT_API_NAME) {
      // Robot takes HTTP basic auth, checked by its handler.
      status = handleRobot(req, res, url, body);
    } else if (auth !== `Bearer ${state.token}` && !url.pathname.startsWith("/twin/")) {
      status = send(res, 401, { error: { code: "unauthorized", message: "unable to authenticate" } });
    } else if (url.hostname === "api.ionos.com") {
      status = handleIonos(req, res, url, body);
    } else if (url.pathname.startsWith("/twin/netcup/")) {
      status = handleNetcup(req, res, body);
    } else {
      status = handleHcloud(req, res, url, body);
    }
    record(req, status, body);
  });
});
server.listen(Number(values.port), values.listen, () => process.stdout.write("ready\n"));
