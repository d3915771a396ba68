/**
 * A stand-in server the site twin runs inside a machine where the real
 * workload does not exist yet (the services' ingress on the virtualization
 * hosts, NFS on the storage hosts, databases, a tunnel's UDP port, a server on
 * the internet). Every answer names the machine, the port and the peer's
 * address, so a probe knows exactly which host it reached and with which
 * source address it arrived (NAT).
 *
 *   node --import tsx scripts/twin/standin.ts --host NAME [--tcp P,...] [--tls P:MODE,...] [--udp P,...]
 *     [--echo P,...] [--cert FILE --key FILE] [--bind ADDRESS]
 *
 * TCP: writes `standin <host> tcp <port> <peer>\n` and closes after 5 s.
 * TLS: an HTTPS server; every request gets 200 and `<host> <mode> <port> <sni> <peer>\n` (keep-alive).
 * Echo: a long-lived TCP connection that sends back every line it receives (the twin's streams through NAT).
 * UDP: answers each datagram with `standin <host> udp <port> <peer>\n`.
 * Prints `ready` on stdout once every socket listens.
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer } from "node:net";
import type { TLSSocket } from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    tcp: { type: "string", default: "" },
    tls: { type: "string", default: "" },
    echo: { type: "string", default: "" },
    udp: { type: "string", default: "" },
    cert: { type: "string" },
    key: { type: "string" },
    bind: { type: "string", default: "0.0.0.0" },
  },
});
const host = values.host;
if (!host) throw new Error("--host is required");
const ports = (list: string) =>
  list
    .split(",")
    .filter(Boolean)
    .map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${p} is not a port`);
      return n;
    });
const bind = values.bind;
const listening: Array<Promise<void>> = [];
const peerOf = (address: string | undefined) => (address ?? "?").replace(/^::ffff:/, "");

for (const port of ports(values.tcp)) {
  const server = createTcpServer((socket) => {
    socket.on("error", () => undefined);
    socket.end(`standin ${host} tcp ${port} ${peerOf(socket.remoteAddress)}\n`);
    socket.setTimeout(5_000, () => socket.destroy());
  });
  listening.push(new Promise((resolve, reject) => server.once("error", reject).listen(port, bind, resolve)));
}

for (const port of ports(values.echo)) {
  const server = createTcpServer((socket) => {
    socket.on("error", () => undefined);
    socket.pipe(socket);
  });
  listening.push(new Promise((resolve, reject) => server.once("error", reject).listen(port, bind, resolve)));
}

const tls = values.tls.split(",").filter(Boolean);
if (tls.length > 0) {
  if (!values.cert || !values.key) throw new Error("--tls needs --cert and --key");
  const cert = readFileSync(values.cert);
  const key = readFileSync(values.key);
  for (const entry of tls) {
    const [p, mode] = entry.split(":");
    const port = ports(p)[0];
    const server = createHttpsServer({ cert, key, keepAliveTimeout: 65_000 }, (req, res) => {
      const sni = (req.socket as TLSSocket).servername || "-";
      const body = `${host} ${mode} ${port} ${sni} ${peerOf(req.socket.remoteAddress)}\n`;
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    server.on("clientError", (_e, socket) => socket.destroy());
    listening.push(new Promise((resolve, reject) => server.once("error", reject).listen(port, bind, resolve)));
  }
}

for (const port of ports(values.udp)) {
  const socket = createSocket("udp4");
  socket.on("message", (_msg, rinfo) => {
    socket.send(`standin ${host} udp ${port} ${rinfo.address}\n`, rinfo.port, rinfo.address);
  });
  listening.push(new Promise((resolve, reject) => socket.once("error", reject).bind(port, bind, () => resolve())));
}

Promise.all(listening).then(
  () => process.stdout.write("ready\n"),
  (error: unknown) => {
    process.stderr.write(`standin ${host}: ${String(error)}\n`);
    process.exit(1);
  },
);
