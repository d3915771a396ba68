/**
 * Runs the twin's probes from inside one machine: reads a JSON array of
 * `ProbeAction`s on stdin, tries each (all at once), and prints a JSON array
 * of `ProbeOutcome`s on stdout. Each probe binds its source address, so a
 * probe leaves from the segment (or public address) its rule names.
 *
 * What counts: `answered` (a reply came back: a banner, an HTTP response, an
 * echo), `refused` (a TCP reset: the packet arrived but nothing listens, so
 * no filter dropped it), `timeout` (nothing came back: dropped), `unreachable`
 * (an ICMP error or no route).
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { request as httpRequest } from "node:http";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ProbeAction, ProbeOutcome } from "../../lib/twin/probes";

function classify(error: NodeJS.ErrnoException): ProbeOutcome["result"] {
  switch (error.code) {
    case "ECONNREFUSED":
    case "ECONNRESET":
      return "refused";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return "unreachable";
    case "ETIMEDOUT":
      return "timeout";
    default:
      return "error";
  }
}

function tcp(p: ProbeAction): Promise<Omit<ProbeOutcome, "id" | "ms">> {
  return new Promise((resolve) => {
    let data = "";
    let connected = false;
    const socket = tcpConnect({ host: p.target, port: p.port!, localAddress: p.source });
    const done = (r: Omit<ProbeOutcome, "id" | "ms">) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => done(connected ? { result: "answered", answer: data.split("\n")[0] || "(connected)" } : { result: "timeout" }),
      p.timeoutMs,
    );
    socket.on("connect", () => {
      connected = true;
      // A server that speaks first answers at once; give a silent one a moment, then count the handshake.
      setTimeout(() => done({ result: "answered", answer: data.split("\n")[0] || "(connected)" }), 300);
    });
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      if (data.includes("\n")) done({ result: "answered", answer: data.split("\n")[0] });
    });
    socket.on("error", (e: NodeJS.ErrnoException) => done({ result: classify(e), answer: e.code }));
  });
}

function tls(p: ProbeAction): Promise<Omit<ProbeOutcome, "id" | "ms">> {
  return new Promise((resolve) => {
    let data = "";
    // The TCP connection is made first so that it leaves from the probe's source address.
    const raw = tcpConnect({ host: p.target, port: p.port!, localAddress: p.source });
    raw.on("error", () => undefined);
    const socket = tlsConnect({
      socket: raw,
      servername: p.sni,
      // The stand-ins' certificate is the twin's own; the probe checks where it lands, not who signed it.
      rejectUnauthorized: false,
    });
    const done = (r: Omit<ProbeOutcome, "id" | "ms">) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ result: "timeout" }), p.timeoutMs);
    socket.on("secureConnect", () => socket.write(`GET / HTTP/1.1\r\nHost: ${p.sni ?? p.target}\r\nConnection: close\r\n\r\n`));
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      const body = data.split("\r\n\r\n")[1];
      if (body?.includes("\n")) done({ result: "answered", answer: `${data.split("\r\n")[0]} | ${body.trim()}` });
    });
    socket.on("end", () => done(data ? { result: "answered", answer: data.split("\r\n")[0] } : { result: "refused", answer: "closed" }));
    socket.on("error", (e: NodeJS.ErrnoException) => done({ result: classify(e), answer: e.code }));
  });
}

function http(p: ProbeAction): Promise<Omit<ProbeOutcome, "id" | "ms">> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: p.target, port: p.port, localAddress: p.source, path: "/", headers: { host: p.sni ?? p.target }, timeout: p.timeoutMs },
      (res) => {
        res.resume();
        resolve({ result: "answered", answer: `HTTP ${res.statusCode} ${res.headers.location ?? ""}`.trim() });
      },
    );
    req.on("timeout", () => {
      req.destroy();
      resolve({ result: "timeout" });
    });
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ result: classify(e), answer: e.code }));
    req.end();
  });
}

function udp(p: ProbeAction): Promise<Omit<ProbeOutcome, "id" | "ms">> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const done = (r: Omit<ProbeOutcome, "id" | "ms">) => {
      clearTimeout(timer);
      socket.close();
      resolve(r);
    };
    const timer = setTimeout(() => done({ result: "timeout" }), p.timeoutMs);
    // Unconnected: a server bound to any address may answer from another of its addresses (WireGuard does not,
    // a plain UDP server does); the answer names the host, which is what the probe checks.
    // A stand-in's answer from 0.0.0.0 leaves from the host's primary address; where the firewall maps that
    // port's traffic to a failover IP (the WireGuard port's SNAT), the clash with the probe's own conntrack entry
    // moves the source port too. Its text names the port it was sent to, which proves it as well as the port.
    socket.on("message", (msg, rinfo) => {
      const text = msg.toString("utf8").trim();
      if (rinfo.port === p.port || (text.startsWith(`standin `) && text.split(" ")[3] === String(p.port)))
        done({ result: "answered", answer: text });
    });
    socket.on("error", (e: NodeJS.ErrnoException) => done({ result: classify(e), answer: e.code }));
    socket.bind(0, p.source, () => socket.send("probe\n", p.port, p.target));
  });
}

function icmp(p: ProbeAction): Promise<Omit<ProbeOutcome, "id" | "ms">> {
  const wait = Math.max(1, Math.ceil(p.timeoutMs / 1000));
  return new Promise((resolve) => {
    execFile(
      "ping",
      ["-n", "-c", "1", "-W", String(wait), ...(p.source ? ["-I", p.source] : []), p.target],
      { timeout: p.timeoutMs + 2_000 },
      (error, stdout) => {
        if (!error) return resolve({ result: "answered", answer: /time=[\d.]+ ms/.exec(stdout)?.[0] ?? "echo reply" });
        if (/Unreachable|unreachable|Prohibited/.test(stdout)) return resolve({ result: "unreachable", answer: stdout.split("\n")[1] });
        resolve({ result: "timeout" });
      },
    );
  });
}

const RUNNERS = { tcp, tls, http, udp, icmp } as const;

async function main(): Promise<void> {
  let input = "";
  for await (const chunk of process.stdin) input += String(chunk);
  const probes = JSON.parse(input) as ProbeAction[];
  const outcomes = await Promise.all(
    probes.map(async (p): Promise<ProbeOutcome> => {
      const started = Date.now();
      const r = await RUNNERS[p.protocol](p);
      return { id: p.id, ...r, ms: Date.now() - started };
    }),
  );
  process.stdout.write(JSON.stringify(outcomes));
}

main().catch((error: unknown) => {
  process.stderr.write(String(error));
  process.exit(1);
});
