/**
 * The switch to the standby site by DNS, in the pair twin (issue 13): both
 * sites' proxies run PowerDNS from their rendered files; a customer on each
 * side of the internet asks that side's name server for a service's public
 * name, the primary site is cut off (the link between the two internets goes
 * down), and the standby's server is watched until it answers the standby,
 * then the link returns and it is watched until it answers the primary.
 *
 * Figures: `switchSeconds` is the time from the cut until the standby's name
 * server first answered the standby, plus the TTL of the answer it gave before
 * (a resolver may hold that one that long): what a customer waits at worst.
 * `backSeconds` the same after the link returns. `bothWritable` is true if at
 * any moment the name servers' answers together named two sites that take
 * writes under the public name, or if the standby took a write.
 */
import { performance } from "node:perf_hooks";
import { FAILOVER_TTL_SECONDS } from "../../lib/footprint/dns";
import { placeAll } from "../../lib/footprint/placement";
import { twinPublicProxy } from "../../lib/twin/probes";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";

export interface DnsEntry {
  readonly name: string;
  readonly service: string;
  readonly primary: string;
  readonly standby: string;
  /** Cut to the standby's name server answering the standby, plus the TTL (s). */
  readonly switchSeconds: number | null;
  /** Link back to the standby's name server answering the primary again, plus the TTL (s). */
  readonly backSeconds: number | null;
  /** The answer's TTL (s), part of both figures. */
  readonly ttlSeconds: number;
  readonly bothWritable: boolean;
  /** While switched, a request by the public name landed on the standby's read-only instance. */
  readonly landedReadOnly: boolean;
  /** The answer of that request (`<host> <rw|ro> <port> <name> …`). */
  readonly answer: string;
  /** HTTP status of a write (PUT) by the public name while switched (the read-only instance refuses: 403). */
  readonly writeStatus: number;
  /** Both name servers answered the same before the cut (the zones are in step). */
  readonly serversAgreed: boolean;
}

/** Bounds (s): settling after boot, the switch and the return each. */
const SETTLE_BOUND_SECONDS = 90;
const SWITCH_BOUND_SECONDS = 60;
const POLL_MS = 250;

/** The A answers of `server` for `name`, asked from the internet client of `from` (empty on a timeout). */
async function ask(from: SiteTwin, server: string, name: string): Promise<string[]> {
  const r = await from
    .machine("internet")
    .exec(["dig", "+short", "+norecurse", "+time=1", "+tries=1", "-b", from.world.internetClient, `@${server}`, name, "A"], {
      timeoutMs: 5_000,
    });
  return r.code === 0 ? r.stdout.split("\n").filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l.trim())) : [];
}

/** An HTTPS request by `name` to `address` from the internet client of `from`: status and body. */
async function request(from: SiteTwin, address: string, name: string, write?: string): Promise<{ status: number; body: string }> {
  const argv = [
    "curl",
    "-sk",
    "--max-time",
    "10",
    "--interface",
    from.world.internetClient,
    "--resolve",
    `${name}:443:${address}`,
    "-o",
    "-",
    "-w",
    "\n%{http_code}",
    ...(write ? ["-X", "PUT", "--data-binary", "twin", "-H", "Content-Type: application/octet-stream"] : []),
    `https://${name}${write ?? "/"}`,
  ];
  const r = await from.machine("internet").exec(argv, { timeoutMs: 20_000 });
  const lines = r.stdout.split("\n");
  const status = Number(lines.pop());
  return { status: Number.isFinite(status) ? status : 0, body: lines.join("\n").trim() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the switch for the first service whose primary and standby are the two
 * sites of the pair (the location's primary first). Undefined when no service joins them.
 */
export async function dnsSwitch(pair: PairTwin, log: (line: string) => void = () => undefined): Promise<DnsEntry | undefined> {
  const placements = placeAll(pair.a.footprint, pair.a.sites);
  const pick = [pair.a.model.name, pair.b.model.name]
    .flatMap((p) =>
      placements.filter((x) => x.service.primary === p && x.service.standby === (p === pair.a.model.name ? pair.b : pair.a).model.name),
    )
    .find((x) => x.service.mode === "standby" && !x.service.migration);
  if (!pick) return undefined;
  const name = pick.service.publicName;
  const primary = pair.twin(pick.service.primary);
  const standby = pair.twin(pick.service.standby);
  const address = { primary: twinPublicProxy(primary.model, primary.world)!, standby: twinPublicProxy(standby.model, standby.world)! };
  const siteOf = (a: string) => (a === address.primary ? primary.model.name : a === address.standby ? standby.model.name : a);
  const writers = new Set(pick.sites.filter((s) => s.names.some((n) => n.name === name && n.writes)).map((s) => s.site));
  let bothWritable = false;
  const poll = async (): Promise<{ primaryServer: string[]; standbyServer: string[] }> => {
    // Each name server asked by a customer on its own side of the internet (both sides reach it until the cut).
    const [p, s] = await Promise.all([ask(primary, address.primary, name), ask(standby, address.standby, name)]);
    const writable = new Set([...p, ...s].map(siteOf).filter((x) => writers.has(x)));
    if (writable.size > 1) bothWritable = true;
    return { primaryServer: p, standbyServer: s };
  };

  // Settle: both name servers answer the primary (the first answers, before a check ran, count every address down).
  let serversAgreed = false;
  const settle = performance.now();
  let last = "";
  while ((performance.now() - settle) / 1000 < SETTLE_BOUND_SECONDS) {
    const a = await poll();
    last = `${primary.model.name}'s server: ${a.primaryServer.join(" ") || "none"}, ${standby.model.name}'s: ${a.standbyServer.join(" ") || "none"}`;
    if (a.primaryServer.join() === address.primary && a.standbyServer.join() === address.primary) {
      serversAgreed = true;
      break;
    }
    await sleep(1_000);
  }
  log(
    `dns: ${name} answered ${serversAgreed ? `${primary.model.name} (${address.primary}) by both name servers` : `NOT settled (last answers ${last})`} after ${Math.round((performance.now() - settle) / 1000)} s`,
  );

  pair.setJoined(false);
  const cut = performance.now();
  let switched: number | null = null;
  try {
    while ((performance.now() - cut) / 1000 < SWITCH_BOUND_SECONDS) {
      const a = await poll();
      if (a.standbyServer.length > 0 && a.standbyServer.every((x) => x === address.standby)) {
        switched = (performance.now() - cut) / 1000;
        break;
      }
      await sleep(POLL_MS);
    }
    log(
      `dns: ${primary.model.name} cut off; ${standby.model.name}'s name server answers ${standby.model.name} after ${switched === null ? "never" : `${switched.toFixed(1)} s`}`,
    );
    // A customer now lands at the standby: reads answer read-only, a write is refused.
    const read = await request(standby, address.standby, name);
    // A write of a file into the service's first tree (the twin's application writes it to the storage export).
    const tree = pick.service.data.files[0]?.name ?? "none";
    const write = await request(standby, address.standby, name, `/files/${tree}/standort-dns-switch.txt`);
    if (write.status >= 200 && write.status < 300) bothWritable = true;
    const fields = read.body.split(/\s+/);
    const landedReadOnly = read.status === 200 && fields[1] === "ro";
    log(`dns: GET https://${name}/ at ${standby.model.name}: ${read.status} ${read.body.slice(0, 120)}; PUT: ${write.status}`);

    pair.setJoined(true);
    const back = performance.now();
    let returned: number | null = null;
    while ((performance.now() - back) / 1000 < SWITCH_BOUND_SECONDS) {
      const a = await poll();
      if (a.standbyServer.length > 0 && a.standbyServer.every((x) => x === address.primary)) {
        returned = (performance.now() - back) / 1000;
        break;
      }
      await sleep(POLL_MS);
    }
    log(
      `dns: link back; ${standby.model.name}'s name server answers ${primary.model.name} after ${returned === null ? "never" : `${returned.toFixed(1)} s`}`,
    );
    const round = (x: number | null) => (x === null ? null : Math.round((x + FAILOVER_TTL_SECONDS) * 10) / 10);
    return {
      name,
      service: pick.service.name,
      primary: primary.model.name,
      standby: standby.model.name,
      switchSeconds: round(switched),
      backSeconds: round(returned),
      ttlSeconds: FAILOVER_TTL_SECONDS,
      bothWritable,
      landedReadOnly,
      answer: read.body.split("\n")[0] ?? "",
      writeStatus: write.status,
      serversAgreed,
    };
  } finally {
    try {
      pair.setJoined(true);
    } catch {
      // the pair is being torn down
    }
  }
}
