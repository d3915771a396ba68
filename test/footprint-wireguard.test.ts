import test from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  listenPortFor,
  parseWireGuardConfig,
  planTunnels,
  renderTunnelEnd,
  renderWireGuardConfig,
  siteTunnels,
  wireguardPublicKey,
} from "../lib/footprint/wireguard";
import { formatCidr } from "../lib/net/ipv4";
import { example, footprintSiteNames } from "./fixtures/footprint/example";

test("tunnels link the partner pairs, plus one for the migration in progress", () => {
  const { footprint, sites } = example();
  const tunnels = planTunnels(footprint, sites);
  const summary = (t: (typeof tunnels)[number]) => [t.name, t.purpose, t.ends.map((e) => e.site)];
  // One partner tunnel per pair the site files name, called after the two site codes.
  const pairs = [...new Set(sites.map((s) => [s.name, s.partner].sort().join(" ")))].sort();
  const partner = tunnels.filter((t) => t.purpose === "partner");
  assert.deepEqual(partner.map((t) => t.ends.map((e) => e.site).join(" ")).sort(), pairs);
  const codeOf = (name: string) => sites.find((s) => s.name === name)!.code;
  // Named after the two site codes in site-name order (falkenstein's with karlsruhe: wg-fsn-fkb), the same from either end.
  for (const t of tunnels) {
    assert.deepEqual(
      t.ends.map((e) => e.site),
      t.ends.map((e) => e.site).sort(),
    );
    assert.equal(t.name, `wg-${t.ends.map((e) => codeOf(e.site)).join("-")}`);
  }
  // By hand for the footprint's sites: their two partner pairs and git's migration from helsinki to vienna.
  const named = footprintSiteNames(footprint);
  assert.deepEqual(tunnels.filter((t) => t.ends.every((e) => named.includes(e.site))).map(summary), [
    ["wg-fkb-vie", "partner", ["karlsruhe", "vienna"]],
    ["wg-fra-hel", "partner", ["frankfurt", "helsinki"]],
    ["wg-hel-vie", "migration", ["helsinki", "vienna"]],
  ]);
  assert.deepEqual(tunnels.filter((t) => t.purpose === "migration").map(summary), [["wg-hel-vie", "migration", ["helsinki", "vienna"]]]);
  assert.deepEqual(
    siteTunnels(footprint, sites, "vienna").map((t) => t.name),
    ["wg-fkb-vie", "wg-hel-vie"],
  );
  // Once the migration is removed, so is its tunnel: the partner tunnels remain.
  const settled = { ...footprint, services: footprint.services.map((s) => ({ ...s, migration: undefined })) };
  assert.deepEqual(
    planTunnels(settled, sites).map((t) => t.name),
    partner.map((t) => t.name),
  );
});

test("each end's AllowedIPs carry only the other site's supernet, so the tunnel carries only the two supernets", () => {
  const { footprint, sites } = example();
  for (const tunnel of planTunnels(footprint, sites)) {
    const supernets = tunnel.ends.map((e) => e.supernet);
    for (const [i, end] of tunnel.ends.entries()) {
      const peer = tunnel.ends[1 - i];
      const parsed = parseWireGuardConfig(tunnel.configs[end.site]);
      assert.equal(parsed.peers.length, 1, `${tunnel.name} at ${end.site}`);
      assert.deepEqual(parsed.peers[0].allowedIps, [peer.supernet], `${tunnel.name} at ${end.site}`);
      assert.deepEqual(parsed.addresses, [], "no tunnel addresses outside the two supernets");
      assert.ok(parsed.peers[0].allowedIps.every((p) => supernets.includes(p)));
      assert.equal(parsed.listenPort, end.listenPort);
      assert.equal(parsed.peers[0].endpoint, `${peer.endpoint}:${peer.listenPort}`);
    }
  }
});

test("no key material is rendered: keys are placeholders naming the stack secret", () => {
  const { footprint, sites } = example();
  const config = planTunnels(footprint, sites).find((t) => t.name === "wg-fra-hel")!.configs.frankfurt;
  assert.match(config, /^PrivateKey = \(secret: standort:wireguard\.wg-fra-hel\.frankfurt\.privateKey\)$/m);
  assert.match(config, /^PresharedKey = \(secret: standort:wireguard\.wg-fra-hel\.presharedKey\)$/m);
  // A WireGuard key is 32 bytes in base64: 43 characters and "=".
  assert.doesNotMatch(config, /[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=/);
});

test("the endpoint is the NAT address of an own-prefix site, and a named placeholder where the provider assigns it", () => {
  const { footprint, sites } = example();
  const tunnel = planTunnels(footprint, sites).find((t) => t.name === "wg-fra-hel")!;
  assert.deepEqual(
    tunnel.ends.map((e) => [e.site, e.endpoint, e.listenPort]),
    [
      ["frankfurt", "198.18.2.65", 48832],
      ["helsinki", "(failover IP nat of helsinki, known after deploy)", 48352],
    ],
  );
});

test("the parser reads what the renderer writes, for any two supernets", () => {
  const supernet = fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 16, max: 20 }))
    .map(([octet, length]) => formatCidr({ network: (10 * 2 ** 24 + octet * 2 ** 16) >>> 0, length }));
  fc.assert(
    fc.property(supernet, supernet, fc.integer({ min: 1024, max: 65535 }), (a, b, port) => {
      const local = { site: "a", code: "aaa", supernet: a, listenPort: port, endpoint: "192.0.2.1" };
      const peer = { site: "b", code: "bbb", supernet: b, listenPort: 51820, endpoint: "192.0.2.2" };
      const text = renderWireGuardConfig({ name: "wg-aaa-bbb", purpose: "partner" }, local, peer, {
        privateKey: "k",
        peerPublicKey: "p",
        presharedKey: "s",
      });
      const parsed = parseWireGuardConfig(text);
      assert.equal(parsed.listenPort, port);
      assert.deepEqual(parsed.peers, [{ publicKey: "p", endpoint: "192.0.2.2:51820", allowedIps: [b] }]);
    }),
    { numRuns: 100, seed: 51820 },
  );
});

test("the parser accumulates repeated and comma-separated AllowedIPs, as wg-quick does", () => {
  const parsed = parseWireGuardConfig(
    [
      "[Interface]",
      "ListenPort = 51820",
      "Address = 10.0.0.1/32",
      "[Peer]",
      "AllowedIPs = 10.1.0.0/16, 0.0.0.0/0 # everything",
      "AllowedIPs = 10.2.0.0/16",
    ].join("\n"),
  );
  assert.deepEqual(parsed, {
    listenPort: 51820,
    addresses: ["10.0.0.1/32"],
    peers: [{ allowedIps: ["10.1.0.0/16", "0.0.0.0/0", "10.2.0.0/16"] }],
  });
});

test("listen ports differ for every private /20 and do not depend on other tunnels", () => {
  const seen = new Map<number, string>();
  for (let block = 0; block < 4096; block++) {
    const text = formatCidr({ network: (10 * 2 ** 24 + block * 2 ** 12) >>> 0, length: 20 });
    const port = listenPortFor(text);
    assert.equal(seen.has(port), false, `${text} collides with ${seen.get(port)}`);
    seen.set(port, text);
  }
  for (let block = 0; block < 256; block++) {
    const port = listenPortFor(formatCidr({ network: (0xac100000 + block * 2 ** 12) >>> 0, length: 20 }));
    assert.equal(seen.has(port), false);
    seen.set(port, "172.16/12");
  }
  for (let block = 0; block < 16; block++) {
    const port = listenPortFor(formatCidr({ network: (0xc0a80000 + block * 2 ** 12) >>> 0, length: 20 }));
    assert.equal(seen.has(port), false);
    seen.set(port, "192.168/16");
  }
});

test("wireguardPublicKey matches the RFC 7748 X25519 test vector", () => {
  // RFC 7748 section 6.1: Alice's private and public key.
  const privateKey = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex").toString("base64");
  const publicKey = Buffer.from("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", "hex").toString("base64");
  assert.equal(wireguardPublicKey(privateKey), publicKey);
  assert.throws(() => wireguardPublicKey("c2hvcnQ="), /a WireGuard private key is 32 bytes, got 5/);
});

test("a tunnel end waits for its peer: no [Peer] until the peer's key, the preshared key and an endpoint are known", () => {
  const { footprint, sites } = example();
  const tunnel = planTunnels(footprint, sites).find((t) => t.name === "wg-fra-hel")!;
  const key = Buffer.alloc(32, 7).toString("base64");
  const waiting = renderTunnelEnd(tunnel, "frankfurt", { privateKey: key });
  assert.match(waiting, /^# Waiting for helsinki: its stack has not published the tunnel's public key, preshared key, endpoint yet\.$/m);
  assert.equal(parseWireGuardConfig(waiting).peers.length, 0);
  const ready = renderTunnelEnd(tunnel, "frankfurt", {
    privateKey: key,
    presharedKey: Buffer.alloc(32, 9).toString("base64"),
    peerPublicKey: wireguardPublicKey(Buffer.alloc(32, 8).toString("base64")),
    peerEndpoint: "198.19.251.10",
  });
  const parsed = parseWireGuardConfig(ready);
  assert.deepEqual(
    parsed.peers.map((p) => [p.endpoint, p.allowedIps]),
    [["198.19.251.10:48352", ["10.40.0.0/16"]]],
  );
  // Helsinki knows frankfurt's endpoint from the site files (own prefix): only keys are awaited.
  const other = renderTunnelEnd(tunnel, "helsinki", { privateKey: key });
  assert.match(other, /its stack has not published the tunnel's public key, preshared key yet/);
});

test("a provider failover IP declared in the site file is the tunnel endpoint", () => {
  const { footprint, sites } = example();
  const tunnel = planTunnels(footprint, sites).find((t) => t.name === "wg-fkb-vie")!;
  assert.deepEqual(
    tunnel.ends.map((e) => [e.site, e.endpoint]),
    [
      ["karlsruhe", "198.19.20.101"],
      ["vienna", "198.18.4.65"],
    ],
  );
});
