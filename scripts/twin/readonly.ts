/**
 * The standby answers read-only (issue 11, required 7): a customer's request
 * to the standby name (`<instance>-<cc>.<domain>`) crosses the standby site's
 * public path (the internet, its firewall, its proxy pair by SNI) and lands
 * on the read-only port of a virtualization host; there the service's data is
 * the replicated data and a write is refused by the database itself.
 *
 * The application behind the ingress is a stand-in until the platform issue
 * brings the containers: the request proves where it lands and in which
 * mode, the database proves what the application would read and that it
 * cannot write.
 */
import { twinPublicProxy } from "../../lib/twin/probes";
import type { PairTwin } from "./pair";
import type { PairDatabases } from "./databases";
import type { SiteTwin } from "./site";

export interface ReadOnlyEntry {
  readonly service: string;
  readonly site: string;
  /** The standby name asked for. */
  readonly name: string;
  /** What answered the request (`<host> <mode> <port> <sni> …` from the ingress), or what happened. */
  readonly answer: string;
  /** The request landed on the read-only port (mode `ro`, 8444). */
  readonly landedReadOnly: boolean;
  readonly database: string;
  /** Rows at the primary and at the standby (the standby reads what the primary wrote). */
  readonly primaryRows: number;
  readonly standbyRows: number;
  readonly writeRefused: boolean;
  /** The database's refusal. */
  readonly error: string;
}

/** The site's public proxy address (its own prefix's, or the proxy failover IP), where customers connect. */
export function publicProxy(twin: SiteTwin): string | undefined {
  return twinPublicProxy(twin.model, twin.world);
}

/** One entry per replicated database's standby: the request by the standby name and the database's read-only mode. */
export async function readOnly(
  pair: PairTwin,
  databases: PairDatabases,
  log: (line: string) => void = () => undefined,
): Promise<ReadOnlyEntry[]> {
  const entries: ReadOnlyEntry[] = [];
  for (const standby of databases.instances.filter((i) => i.role === "standby")) {
    const twin = pair.twin(standby.site);
    const backend = twin.services.find((s) => s.name === `${standby.service}-ro`);
    // Its standby name (`<instance>-<cc>.<domain>`): the public name answers there too, but only while the DNS sends it.
    const domain = `.${twin.footprint.domain}`;
    const name = backend?.hostnames.find((h) => h.endsWith(domain)) ?? backend?.hostnames.find((h) => !h.startsWith("*.")) ?? "";
    const address = publicProxy(twin);
    let answer = "no read-only name or public proxy address at the standby";
    if (name && address) {
      const [o] = await twin.probe("internet", [{ id: "ro", protocol: "tls", target: address, port: 443, sni: name, timeoutMs: 5_000 }]);
      answer = o.answer ?? o.result;
    }
    const db = await databases.readOnly(standby);
    const entry: ReadOnlyEntry = {
      service: standby.service,
      site: standby.site,
      name,
      answer,
      landedReadOnly: / ro 8444 /.test(answer),
      database: standby.database,
      ...db,
    };
    entries.push(entry);
    log(
      `read-only ${standby.service} at ${standby.site}: ${name} -> ${answer}; ${standby.database} reads ${db.standbyRows}/${db.primaryRows} rows of the primary, write ${db.writeRefused ? `refused (${db.error})` : "ACCEPTED"}`,
    );
  }
  return entries;
}
