/**
 * The twin's customer load: N clients, each on its own keep-alive HTTPS
 * connection (SNI = the service's name), each sending one request per period.
 * A request that fails or takes longer than the timeout counts as failed, and
 * its client reconnects, as a browser retries. Every request is recorded, so
 * the failover scenario can count requests and failures per event and find
 * the longest gap without a successful response.
 *
 * Why not Debian's h2load or wrk, which were run against the twin first
 * (vienna, 800 connections, proxy crash): h2load never reconnects and does not
 * count a request that hangs on a dead connection (the crash showed as 4,800
 * requests instead of 16,000, "0 failed"); wrk reconnects in a tight loop
 * (59,760 connect errors in one takeover) and reports totals only, not when
 * requests failed, so no gap can be read from it.
 *
 *   node --import tsx scripts/twin/load.ts --target ADDRESS --port 443 --sni NAME --source ADDRESS
 *     --clients 800 --period-ms 1000 --timeout-ms 2000 --duration-ms 30000 --out FILE [--mode https|nfs|stream]
 *
 * `nfs` (the storage path): each request is a new TCP connection to the NFS
 * port carrying an RPC NULL call of NFSv4 (program 100003, version 4,
 * procedure 0; RFC 5531 with TCP record marking, RFC 7530 section 16.1) that
 * must be answered MSG_ACCEPTED/SUCCESS within the timeout, as a client that
 * mounts the storage address sees the server answer.
 *
 * `stream` (long-lived connections through the firewall's NAT): each client opens one TCP connection and
 * keeps it for the whole run, sending a line each period and waiting for its echo; it never reconnects. A
 * line whose echo is late counts failed once (`[sent, timeoutAt, 0, stream]`) and the client waits on
 * (TCP retransmits it); each echo is `[sent, echoedAt, 1, stream]`, a connection that breaks
 * `[t, t, -1, stream]`. A stream survives an event when it echoes lines sent after it and never broke.
 *
 * Writes FILE as JSON lines `[startMs, endMs, ok]` (epoch milliseconds) when it ends;
 * prints `ready` once every client has connected once (or tried to), and a summary line at the end.
 */
import { writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    port: { type: "string", default: "443" },
    sni: { type: "string" },
    source: { type: "string" },
    clients: { type: "string", default: "800" },
    "period-ms": { type: "string", default: "1000" },
    "timeout-ms": { type: "string", default: "2000" },
    "duration-ms": { type: "string", default: "30000" },
    out: { type: "string" },
    mode: { type: "string", default: "https" },
  },
});
const mode = values.mode;
if (mode !== "https" && mode !== "stream" && mode !== "nfs") throw new Error(`--mode ${mode}: https, nfs or stream`);
const target = values.target!;
const port = Number(values.port);
const sni = values.sni ?? "";
const clients = Number(values.clients);
const period = Number(values["period-ms"]);
const timeout = Number(values["timeout-ms"]);
const duration = Number(values["duration-ms"]);
const records: Array<[number, number, 0 | 1] | [number, number, -1 | 0 | 1, number]> = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const request = `GET / HTTP/1.1\r\nHost: ${sni}\r\nUser-Agent: standort-twin-load\r\n\r\n`;

/** One request on `socket`; resolves true when a whole 200 response arrived in time. */
function exchange(socket: TLSSocket): Promise<boolean> {
  return new Promise((resolve) => {
    let buffer = "";
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve(ok);
    };
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      const head = buffer.indexOf("\r\n\r\n");
      if (head < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(buffer.slice(0, head))?.[1] ?? "0");
      if (buffer.length - head - 4 >= length) finish(buffer.startsWith("HTTP/1.1 200"));
    };
    const onClose = () => finish(false);
    const timer = setTimeout(() => finish(false), timeout);
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.write(request);
  });
}

function open(): Promise<TLSSocket | undefined> {
  return new Promise((resolve) => {
    const raw = tcpConnect({ host: target, port, localAddress: values.source });
    const socket = tlsConnect({ socket: raw, servername: sni, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, timeout);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on("error", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(undefined);
    });
    raw.on("error", () => undefined);
  });
}

/** ONC RPC (RFC 5531) constants of the NFSv4 NULL call. */
const RPC = {
  call: 0,
  reply: 1,
  version: 2,
  nfsProgram: 100003,
  nfsVersion: 4,
  nullProcedure: 0,
  accepted: 0,
  success: 0,
  lastFragment: 0x80000000,
} as const;
let nextXid = (process.pid * 7919) >>> 0;

/** One NFS request: a new connection, an NFSv4 NULL call, and its accepted, successful reply. */
function nfsNull(): Promise<boolean> {
  return new Promise((resolve) => {
    const xid = (nextXid = (nextXid + 1) >>> 0);
    const call = Buffer.alloc(44);
    // Record mark (last fragment, 40 bytes), then xid, CALL, RPC version 2, program, version, procedure,
    // credential AUTH_NONE (flavor 0, length 0) and verifier AUTH_NONE.
    [RPC.lastFragment | 40, xid, RPC.call, RPC.version, RPC.nfsProgram, RPC.nfsVersion, RPC.nullProcedure, 0, 0, 0, 0].forEach((v, i) =>
      call.writeUInt32BE(v >>> 0, i * 4),
    );
    let data = Buffer.alloc(0);
    const socket = tcpConnect({ host: target, port, localAddress: values.source }, () => socket.write(call));
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeout);
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length < 24) return;
      // Reply: record mark, xid, REPLY, MSG_ACCEPTED, verifier (flavor, length, body), accept_stat.
      const verifier = data.readUInt32BE(20);
      const at = 24 + Math.ceil(verifier / 4) * 4;
      if (data.length < at + 4) return;
      finish(
        data.readUInt32BE(4) === xid &&
          data.readUInt32BE(8) === RPC.reply &&
          data.readUInt32BE(12) === RPC.accepted &&
          data.readUInt32BE(at) === RPC.success,
      );
    });
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
  });
}

/** One long-lived stream (mode `stream`): connect once, then a line per period, each waited for until echoed. */
async function stream(index: number, started: () => void): Promise<void> {
  await sleep((index * period) / clients);
  const socket = tcpConnect({ host: target, port, localAddress: values.source });
  let broken = false;
  let buffer = "";
  let waiting: ((echoed: boolean) => void) | undefined;
  const breaks = () => {
    if (broken) return;
    broken = true;
    records.push([Date.now(), Date.now(), -1, index]);
    waiting?.(false);
  };
  socket.on("error", breaks);
  socket.on("close", breaks);
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    while (buffer.includes("\n")) {
      buffer = buffer.slice(buffer.indexOf("\n") + 1);
      waiting?.(true);
    }
  });
  const connected = await new Promise<boolean>((resolve) => {
    socket.once("connect", () => resolve(true));
    socket.once("error", () => resolve(false));
    setTimeout(() => resolve(false), timeout);
  });
  started();
  if (!connected) {
    socket.destroy();
    return;
  }
  let n = 0;
  let next = Date.now();
  while (!broken && Date.now() < until) {
    await sleep(Math.min(next, until) - Date.now());
    if (Date.now() >= until) break;
    const sent = Date.now();
    next = sent + period;
    const echoed = new Promise<boolean>((resolve) => (waiting = resolve));
    socket.write(`${index} ${n++}\n`);
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      records.push([sent, Date.now(), 0, index]);
    }, timeout);
    // Wait for this line's echo however long it takes (or until the run ends): TCP carries it once the path is back.
    const ended = new Promise<boolean>((resolve) => {
      const check = setInterval(() => {
        if (Date.now() >= until) {
          clearInterval(check);
          resolve(false);
        }
      }, 100);
      void echoed.then(() => clearInterval(check));
    });
    const ok = await Promise.race([echoed, ended]);
    clearTimeout(timer);
    waiting = undefined;
    if (ok) records.push([sent, Date.now(), 1, index]);
    else if (!late && !broken) records.push([sent, Date.now(), 0, index]);
  }
  // The run is over: closing is not a break.
  broken = true;
  socket.destroy();
}

async function client(index: number, started: () => void): Promise<void> {
  // Spread the clients over one period, so they do not all ask at the same instant.
  await sleep((index * period) / clients);
  let socket: TLSSocket | undefined;
  let first = true;
  let next = Date.now();
  while (Date.now() < until) {
    await sleep(Math.min(next, until) - Date.now());
    if (Date.now() >= until) break;
    const begin = Date.now();
    next = begin + period;
    if (mode === "nfs") {
      if (first) {
        first = false;
        started();
      }
      const ok = await nfsNull();
      records.push([begin, Date.now(), ok ? 1 : 0]);
      continue;
    }
    if (!socket || socket.destroyed) socket = await open();
    if (first) {
      first = false;
      started();
    }
    const ok = socket ? await exchange(socket) : false;
    records.push([begin, Date.now(), ok ? 1 : 0]);
    if (!ok) {
      socket?.destroy();
      socket = undefined;
    }
  }
  socket?.destroy();
}

/** When the clients stop: after the duration, or at once on SIGTERM (the scenario ends the load early). */
let until = Date.now() + duration;
process.once("SIGTERM", () => {
  until = Date.now();
});

async function main(): Promise<void> {
  let waiting = clients;
  const all = Array.from({ length: clients }, (_v, i) =>
    (mode === "stream" ? stream : client)(i, () => {
      if (--waiting === 0) process.stdout.write("ready\n");
    }),
  );
  await Promise.all(all);
  writeFileSync(values.out!, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const failed = records.filter((r) => r[2] === 0).length;
  process.stdout.write(`done ${records.length} requests, ${failed} failed\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(String(error));
  process.exit(1);
});
