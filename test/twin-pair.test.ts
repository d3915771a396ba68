// Two partner locations as one twin (scripts/twin/pair.ts): vienna and karlsruhe booted from their rendered
// files, joined across their internets, the tunnel real (wireguard-go with the rendered file), and the data path
// run from the rendered units and database files with the stack's credentials (derived values): PostgreSQL
// streaming and MariaDB GTID replication, the guarded rsync copy, the continuous copy (lsyncd), the standby's
// read-only mode, and a promotion with the old primary's return. Nothing touches the machine's interfaces.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { PairTwin } from "../scripts/twin/pair";
import { tunnelDown, tunnelsUp } from "../scripts/twin/tunnels";
import { PairDatabases, RPO_TARGET_SECONDS } from "../scripts/twin/databases";
import { PairFiles } from "../scripts/twin/files";
import { readOnly } from "../scripts/twin/readonly";
import { backups } from "../scripts/twin/backups";
import { promotion } from "../scripts/twin/promotion";
import { dnsSwitch } from "../scripts/twin/dns";
import { watchReplicationAlert } from "../scripts/twin/alerts";
import { assertNothingLeft, requireTwin } from "./helpers/twin";
import { requireTool } from "./helpers/tools";

/** What the data path runs besides the site twin's own tools. */
const DATA_TOOLS = [
  "pdns_server",
  "dig",
  "prometheus",
  "prometheus-node-exporter",
  "wireguard-go",
  "wg",
  "initdb",
  "pg_basebackup",
  "psql",
  "mariadbd",
  "mariadb-install-db",
  "mariadb",
  "rsync",
  "rrsync",
  "lsyncd",
];

let pair: PairTwin | undefined;
after(() => pair?.destroy());

test(
  "vienna and karlsruhe as a pair twin: tunnel, DNS switch, data path, alerts, recovery point, promotion",
  { timeout: 900_000 },
  async (t) => {
    if (!requireTwin(t) || !requireTool(t, ...DATA_TOOLS)) return;
    pair = await PairTwin.boot({ location: "vienna", partner: "karlsruhe" });
    const p = pair;
    const prefixes = [p.a.prefix, p.b.prefix];
    const dirs = [p.a.dir, p.b.dir];

    await t.test("the tunnel is up both ways as rendered, carries only the two supernets, and blocks while down", async () => {
      const up = await tunnelsUp(p);
      t.diagnostic(JSON.stringify(up));
      assert.deepEqual(
        up.map((e) => [e.from, e.to, e.up, e.allowedIps]),
        [
          ["vienna", "karlsruhe", true, [p.b.model.supernet]],
          ["karlsruhe", "vienna", true, [p.a.model.supernet]],
        ],
      );
      const down = await tunnelDown(p, p.a);
      t.diagnostic(JSON.stringify(down));
      assert.equal(down.blockedWhileDown, true, "partner traffic is not answered while the tunnel is down");
      assert.equal(down.leakedPackets, 0, "and nothing for the partner left the site in clear");
      assert.ok(down.backAfterMs !== null, "the tunnel comes back when started again");
    });

    const databases = await PairDatabases.start(p);
    const files = await PairFiles.prepare(p);
    // The copy with the shortest RPO (mail, 5 min) ran for the last time in prepare: as if its timer were stopped,
    // nothing runs it again until its alert fired; the scenarios below that run no copy go on meanwhile.
    const watch = await watchReplicationAlert(p, files);

    await t.test("with the primary cut off, the public name answers the standby within 30 s, read-only, and comes back", async () => {
      const d = await dnsSwitch(p);
      t.diagnostic(JSON.stringify(d));
      assert.ok(d, "mail has its primary at vienna and its standby at karlsruhe");
      assert.equal(d.serversAgreed, true, "both name servers answered the primary before the cut");
      assert.ok(d.switchSeconds !== null && d.switchSeconds <= 30, `switched within 30 s, TTL included (${d.switchSeconds})`);
      assert.equal(d.landedReadOnly, true, "a request by the public name landed on the standby's read-only instance");
      assert.equal(d.writeStatus, 403, "and a write there was refused");
      assert.equal(d.bothWritable, false);
      assert.ok(d.backSeconds !== null && d.backSeconds <= 30, `the primary answers again after the link returns (${d.backSeconds})`);
    });

    await t.test("the rendered copy refuses a source that must not be copied, and the standby keeps its data", async () => {
      const guards = await files.guards();
      t.diagnostic(JSON.stringify(guards));
      assert.deepEqual(
        guards.map((g) => [g.case, g.refused, g.standbyKept]),
        [
          ["empty-source", true, true],
          ["missing-source", true, true],
          ["unmarked-source", true, true],
          ["mass-deletion", true, true],
        ],
      );
    });

    await t.test("a stopped replication job fires ReplicationStale within its RPO plus one scrape interval", async () => {
      const a = await watch.done;
      t.diagnostic(JSON.stringify(a));
      assert.equal(a.error, undefined);
      assert.equal(a.scraped, true, "Prometheus read the job's success from node exporter");
      assert.equal(a.fired, true);
      assert.equal(a.quietBefore, true, "and not before the RPO had passed");
      assert.ok(a.afterSeconds !== null && a.afterSeconds <= a.boundSeconds, `${a.afterSeconds} s <= ${a.boundSeconds} s`);
    });

    await t.test("recovery point under a steady write load: databases within 5 s, files within 60 s", async () => {
      const rpo = [...(await databases.measureRpo()), ...(await files.measureRpo())];
      for (const r of rpo)
        t.diagnostic(`${r.service}/${r.data} (${r.kind}) ${r.from} -> ${r.to}: ${r.seconds} s, samples ${r.samples.join(", ")}`);
      assert.deepEqual([...new Set(rpo.map((r) => r.kind))].sort(), ["files", "mariadb", "postgres"]);
      for (const r of rpo) {
        assert.ok(r.seconds !== null && r.seconds <= RPO_TARGET_SECONDS[r.kind], `${r.service}/${r.data}: ${r.seconds} s`);
      }
    });

    await t.test("backups: the rendered units dump as the read-only user and store into both local stores and the partner's", async () => {
      const b = await backups(p, databases);
      t.diagnostic(JSON.stringify(b));
      assert.deepEqual(
        b.map((e) => [e.placement, e.ran, e.snapshots, e.treesIncluded, e.dumpsIncluded]),
        [
          ["local", true, 1, true, true],
          ["local", true, 1, true, true],
          ["offsite", true, 1, true, true],
        ],
      );
    });

    await t.test("the standby answers its name read-only: the replicated data, a write refused by the database", async () => {
      const ro = await readOnly(p, databases);
      t.diagnostic(JSON.stringify(ro));
      assert.ok(ro.length >= 2);
      for (const r of ro) {
        assert.ok(r.landedReadOnly, `${r.name}: ${r.answer}`);
        assert.ok(r.primaryRows > 0 && r.standbyRows === r.primaryRows, `${r.database}: ${r.standbyRows}/${r.primaryRows}`);
        assert.ok(r.writeRefused, `${r.database}: the write was accepted`);
      }
    });

    await t.test("promotion and the old primary's return lose nothing", async () => {
      const r = await promotion(p, files, undefined, databases);
      t.diagnostic(JSON.stringify(r));
      assert.ok(r, "vienna and karlsruhe copy files under systemd: there is a copy to promote");
      assert.equal(r.staleRefused, true, "the old primary's stale copy is refused");
      assert.equal(r.newPrimaryKept, true, "the new primary's data is untouched by it");
      assert.equal(r.newWritesCopied, r.newWrites);
      assert.equal(r.keptAside, r.unreplicatedWrites, "every unreplicated write of the old primary is kept aside");
      assert.equal(r.lost, 0);
      // Its databases: promoted at the new primary, which keeps its writes and takes none of the returned old primary's.
      assert.ok(r.databases.length >= 1, "the promoted service has a database");
      for (const d of r.databases) assert.deepEqual([d.newPrimaryKept, d.keptInPlace, d.lost], [true, d.unreplicatedWrites, 0], d.database);
    });

    p.destroy();
    for (const [i, prefix] of prefixes.entries()) assertNothingLeft(prefix, dirs[i]);
  },
);
