// The twin's stand-in of the provider APIs (scripts/twin/provider-api.ts), on loopback: it records what it
// receives (never the token), refuses what the real APIs refuse (no token, an alias IP another server holds,
// a NIC not in the LAN) and announces every effect the twin applies to the provider's routers.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProviderState } from "../scripts/twin/provider-api";
import { makeTls } from "../scripts/twin/tls";
import { requireTool } from "./helpers/tools";

const dir = mkdtempSync(join(tmpdir(), "standort-api-"));
let api: ChildProcess | undefined;
after(() => {
  api?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const TOKEN = "fake-token-for-the-stand-in";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

test("the provider API stand-in refuses what the real APIs refuse and announces each effect", { timeout: 60_000 }, async (t) => {
  if (!requireTool(t, "openssl")) return;
  const tls = makeTls(dir, ["api.hetzner.cloud", "api.ionos.com", "api.netcup.twin"]);
  const state: ProviderState = {
    token: TOKEN,
    hcloud: {
      network: { id: 7, name: "helsinki-net", ipRange: "10.40.0.0/16" },
      servers: [
        { id: 1, name: "hel-fw-1", ip: "10.40.1.2", aliasIps: ["10.40.1.1"] },
        { id: 2, name: "hel-fw-2", ip: "10.40.1.3", aliasIps: [] },
      ],
      floatingIps: [{ id: 50, name: "helsinki-nat", ip: "198.19.91.11", server: 1 }],
    },
    ionos: { datacenter: "dc-1", lan: "2", nics: { "nic-a": "fkb-proxy-1", "nic-b": "fkb-proxy-2" } },
    netcup: { hosts: ["vie-fw-1", "vie-fw-2"], ips: ["198.19.40.10"], minIntervalSeconds: 300, routes: { "198.19.40.10": "vie-fw-1" } },
  };
  writeFileSync(join(dir, "state.json"), JSON.stringify(state));
  const port = await freePort();
  const record = join(dir, "calls.jsonl");
  writeFileSync(record, "");
  api = spawn(
    "node",
    [
      "--import",
      "tsx",
      "scripts/twin/provider-api.ts",
      "--state",
      join(dir, "state.json"),
      "--cert",
      tls.cert,
      "--key",
      tls.key,
      "--listen",
      "127.0.0.1",
      "--port",
      String(port),
      "--record",
      record,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  api.stdout!.on("data", (c: Buffer) => (out += c.toString("utf8")));
  for (let i = 0; i < 100 && !out.includes("ready"); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(out.includes("ready"), "the stand-in listens");
  const ca = readFileSync(tls.ca);

  const call = (host: string, method: string, path: string, body?: unknown, token: string | null = TOKEN) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          servername: host,
          ca,
          method,
          path,
          headers: { host, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString("utf8")));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const effects = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));

  assert.equal((await call("api.hetzner.cloud", "GET", "/v1/servers?name=hel-fw-2", undefined, null)).status, 401);
  assert.equal((await call("api.hetzner.cloud", "GET", "/v1/servers?name=hel-fw-2", undefined, "wrong")).status, 401);
  assert.deepEqual((await call("api.hetzner.cloud", "GET", "/v1/servers?name=hel-fw-2")).json, { servers: [{ id: 2, name: "hel-fw-2" }] });

  // An alias IP another server still holds is refused, as Hetzner refuses it, and nothing moves.
  const taken = await call("api.hetzner.cloud", "POST", "/v1/servers/2/actions/change_alias_ips", { network: 7, alias_ips: ["10.40.1.1"] });
  assert.equal(taken.status, 409);
  assert.equal(taken.json.error.code, "ip_not_available");
  assert.equal(
    (await call("api.hetzner.cloud", "POST", "/v1/servers/2/actions/change_alias_ips", { network: 7, alias_ips: ["10.50.0.1"] })).status,
    422,
  );
  assert.deepEqual(effects(), []);

  // Taken off the first server, then put on the second: two effects, in that order.
  assert.equal(
    (await call("api.hetzner.cloud", "POST", "/v1/servers/1/actions/change_alias_ips", { network: 7, alias_ips: [] })).status,
    201,
  );
  assert.equal(
    (await call("api.hetzner.cloud", "POST", "/v1/servers/2/actions/change_alias_ips", { network: 7, alias_ips: ["10.40.1.1"] })).status,
    201,
  );
  assert.equal((await call("api.hetzner.cloud", "POST", "/v1/floating_ips/50/actions/assign", { server: 2 })).status, 201);
  assert.equal((await call("api.hetzner.cloud", "POST", "/v1/servers/1/actions/poweroff")).status, 201);
  assert.equal(
    (
      await call("api.ionos.com", "PATCH", "/cloudapi/v6/datacenters/dc-1/lans/2", {
        ipFailover: [{ ip: "198.19.20.100", nicUuid: "nic-x" }],
      })
    ).status,
    422,
  );
  assert.equal(
    (
      await call("api.ionos.com", "PATCH", "/cloudapi/v6/datacenters/dc-1/lans/9", {
        ipFailover: [{ ip: "198.19.20.100", nicUuid: "nic-b" }],
      })
    ).status,
    404,
  );
  assert.equal(
    (
      await call("api.ionos.com", "PATCH", "/cloudapi/v6/datacenters/dc-1/lans/2", {
        ipFailover: [{ ip: "198.19.20.100", nicUuid: "nic-b" }],
      })
    ).status,
    202,
  );
  // Netcup (through the operator's command): where it goes already costs nothing; a move, then none for 5 minutes.
  const netcup = (host: string) => call("api.netcup.twin", "POST", "/twin/netcup/route", { ip: "198.19.40.10", host }, null);
  assert.equal((await netcup("vie-fw-1")).json.unchanged, true);
  assert.equal((await netcup("vie-fw-2")).status, 200);
  const refused = await netcup("vie-fw-1");
  assert.equal(refused.status, 429);
  assert.match(refused.json.error, /re-routed less than 300 s ago/);
  assert.equal((await call("api.netcup.twin", "POST", "/twin/netcup/route", { ip: "198.19.40.99", host: "vie-fw-1" }, null)).status, 422);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(effects(), [
    { effect: "aliases", host: "hel-fw-1", ips: [] },
    { effect: "aliases", host: "hel-fw-2", ips: ["10.40.1.1"] },
    { effect: "route", ip: "198.19.91.11", host: "hel-fw-2" },
    { effect: "poweroff", host: "hel-fw-1" },
    { effect: "route", ip: "198.19.20.100", host: "fkb-proxy-2" },
    { effect: "route", ip: "198.19.40.10", host: "vie-fw-2" },
  ]);

  // Every call is recorded, the token never.
  const recorded = readFileSync(record, "utf8").trim().split("\n");
  assert.equal(recorded.length, 16);
  assert.ok(!readFileSync(record, "utf8").includes(TOKEN));
  assert.deepEqual(JSON.parse(recorded[3]).status, 409);
});
