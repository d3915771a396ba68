// The replication and backup units and the tunnel configurations the stacks
// install, checked as their readers would: systemd-analyze for units and
// calendars, the WireGuard parser for tunnels (no wg tool or module here).
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { parseWireGuardConfig, planTunnels } from "../lib/footprint/wireguard";
import { planHostFiles } from "../lib/preview/files";
import { writeRenderedFiles } from "../lib/render";
import { requireTool, run, runAll } from "./helpers/tools";

const { footprint, sites } = loadFootprint();
const rendered = sites.flatMap((m) => planHostFiles(m, sites, footprint));
const dir = mkdtempSync(join(tmpdir(), "standort-units-"));
writeRenderedFiles(dir, rendered);
after(() => rmSync(dir, { recursive: true, force: true }));

// Path units too: the continuous copy (standort-lsyncd.service) is started by standort-lsyncd.path on the active member.
const units = rendered.flatMap(({ host, files }) =>
  files.filter((f) => /^\/etc\/systemd\/system\/standort-.*\.(service|timer|path)$/.test(f.path)).map((f) => ({ host, file: f })),
);

/**
 * The replication and backup jobs' units: every unit but the platform's own (the pair members' fence sshd, the
 * storage pair's first-boot unit, the Compose projects' template, the Kubernetes bootstrap).
 */
const PLATFORM_UNITS = /^\/etc\/systemd\/system\/standort-(fence|data-volume|compose@|kubernetes-bootstrap)\.?service$/;
/**
 * The monitoring's own units (lib/monitoring/host-files.ts, lib/monitoring/job-record.ts): the host metrics' service
 * and timer on firewalls and virtualization hosts, and the template unit every job's `OnFailure=` starts.
 */
const MONITORING_UNITS = /^\/etc\/systemd\/system\/standort-(host-metrics\.(service|timer)|job-failed@\.service)$/;
const jobUnits = units.filter((u) => !PLATFORM_UNITS.test(u.file.path) && !MONITORING_UNITS.test(u.file.path));

test("every site that copies files gets units on both storage hosts", () => {
  const withUnits = [...new Set(jobUnits.map((u) => u.host))].sort();
  // Every site copies files, and file copies run on the storage hosts everywhere: frankfurt and helsinki (Kubernetes,
  // backups as CronJobs) have the copies' timers and lsyncd; karlsruhe and vienna (compose) the backups' timers too.
  assert.deepEqual(withUnits, [
    "fkb-stor-1",
    "fkb-stor-2",
    "fra-stor-1",
    "fra-stor-2",
    "hel-stor-1",
    "hel-stor-2",
    "vie-stor-1",
    "vie-stor-2",
  ]);
  for (const host of ["fra-stor-1", "hel-stor-1"]) {
    const paths = jobUnits.filter((u) => u.host === host).map((u) => u.file.path);
    assert.ok(paths.length > 0 && paths.every((p) => !/-backup-/.test(p)), `${host}: copies only, ${paths.join(", ")}`);
  }
  // No silent failure: every periodic job's service (the one its timer starts) records its success and failure, and
  // its host has the recorder and the failure unit its OnFailure= starts.
  const timed = jobUnits.filter(
    (x) =>
      x.file.path.endsWith(".service") &&
      jobUnits.some((t) => t.host === x.host && t.file.path === x.file.path.replace(/\.service$/, ".timer")),
  );
  assert.ok(timed.length > 0);
  for (const u of timed) {
    const unit = u.file.path.slice("/etc/systemd/system/".length);
    assert.match(u.file.content, /^OnFailure=standort-job-failed@%n\.service$/m, `${u.host}: ${unit}`);
    const service = u.file.content.slice(u.file.content.indexOf("[Service]")).trimEnd().split("\n");
    assert.equal(service.at(-1), `ExecStartPost=/usr/local/lib/standort/job-record success ${unit}`, `${u.host}: ${unit}`);
  }
  for (const host of new Set(timed.map((u) => u.host))) {
    const files = rendered.filter((r) => r.host === host).flatMap((r) => r.files);
    assert.ok(
      files.some((f) => f.path === "/usr/local/lib/standort/job-record" && f.mode === "0755"),
      `${host}: the recorder`,
    );
    assert.ok(
      files.some((f) => f.path === "/etc/systemd/system/standort-job-failed@.service"),
      `${host}: the failure unit`,
    );
  }
  for (const u of jobUnits.filter((x) => x.file.path.endsWith(".timer"))) {
    const service = u.file.path.replace(/\.timer$/, ".service");
    assert.ok(
      units.some((x) => x.host === u.host && x.file.path === service),
      `${u.host}: ${service} exists for its timer`,
    );
  }
  for (const u of jobUnits.filter((x) => x.file.path.endsWith(".path"))) {
    const started = /^Unit=(.*)$/m.exec(u.file.content)?.[1];
    assert.ok(
      units.some((x) => x.host === u.host && x.file.path === `/etc/systemd/system/${started}`),
      `${u.host}: ${started} exists for its path unit`,
    );
  }
});

/** What systemd-analyze complains about, less the job tools that only the storage hosts have. */
function complaints(stderr: string): string[] {
  // rsync, restic, lsyncd and the database dump tools live on the storage hosts, not on the test machine (all under
  // /usr/bin). So does the source guard every file copy runs rsync through: /usr/local/sbin/standort-replicate is a
  // program the stack renders and delivers to the storage hosts (lib/footprint/replicate.sh), never installed here.
  // So is the storage hosts' first-boot program of the data volume (/usr/local/sbin/standort-data-volume,
  // lib/render/storage.ts), delivered with its unit.
  // So are the monitoring's programs (lib/monitoring): the job recorder every job's ExecStartPost= and failure unit
  // run (/usr/local/lib/standort/job-record) and the host metrics' collector (/usr/local/lib/standort/host-metrics).
  // Only those exact paths are excused: any other /usr/local program a unit names is still reported.
  return stderr
    .split("\n")
    .filter(
      (l) =>
        l.trim() !== "" &&
        !/Command \/usr\/bin\/\S+ is not executable: No such file or directory/.test(l) &&
        !/Command \/usr\/local\/sbin\/standort-(replicate|data-volume) is not executable: No such file or directory/.test(l) &&
        !/Command \/usr\/local\/lib\/standort\/(job-record|host-metrics) is not executable: No such file or directory/.test(l),
    );
}

test("systemd-analyze accepts every unit, the fence sshd's included (only the job tools themselves are absent on this machine)", async (t) => {
  if (!requireTool(t, "systemd-analyze")) return;
  const hosts = [...new Set(units.map((u) => u.host))];
  const results = await runAll(
    hosts.map((host) => [
      "systemd-analyze",
      "verify",
      ...units.filter((u) => u.host === host).map((u) => join(dir, host, u.file.path.slice(1))),
    ]),
  );
  results.forEach((result, i) => assert.deepEqual(complaints(result.stderr), [], `${hosts[i]}: ${result.stderr}`));
});

test("the checks are real: an unknown directive, a bad service type and a bad calendar are reported", async (t) => {
  if (!requireTool(t, "systemd-analyze")) return;
  const service = jobUnits.find((u) => u.file.path.endsWith(".service"))!;
  const broken = join(dir, "standort-broken.service");
  writeFileSync(broken, service.file.content.replace("Type=oneshot", "Type=oneshoot").replace("ExecStart=", "ExecStrat="));
  const result = await run(["systemd-analyze", "verify", broken]);
  assert.ok(
    complaints(result.stderr).some((l) => l.includes("Failed to parse service type, ignoring: oneshoot")),
    result.stderr,
  );
  assert.ok(
    complaints(result.stderr).some((l) => l.includes("Unknown key 'ExecStrat' in section [Service]")),
    result.stderr,
  );

  const timer = units.find((u) => /-files-.*\.timer$/.test(u.file.path))!;
  const calendar = /^OnCalendar=(.*)$/m.exec(timer.file.content)![1];
  assert.match(calendar, /\*:00\//);
  assert.equal((await run(["systemd-analyze", "calendar", calendar])).code, 0, calendar);
  assert.notEqual((await run(["systemd-analyze", "calendar", calendar.replace("*:00/", "*:99/")])).code, 0);
});

test("every file-copy timer fires at least every 15 minutes", () => {
  for (const u of units.filter((x) => /-files-.*\.timer$/.test(x.file.path))) {
    const minutes = Number(/^OnCalendar=\*-\*-\* \*:00\/(\d\d):00$/m.exec(u.file.content)?.[1]);
    assert.ok(minutes >= 1 && minutes <= 15, `${u.host}: ${u.file.path}: every ${minutes} min`);
  }
});

test("tunnel configurations on both firewalls carry only the peer's supernet", () => {
  const tunnels = rendered.flatMap(({ host, files }) =>
    files.filter((f) => f.path.startsWith("/etc/wireguard/")).map((f) => ({ host, file: f })),
  );
  const installed = [...new Set(tunnels.map((x) => `${x.host} ${x.file.path}`))].sort();
  // Both firewalls of each end of every planned tunnel, and nothing else.
  assert.deepEqual(
    installed,
    planTunnels(footprint, sites)
      .flatMap((t) =>
        t.ends.flatMap((e) =>
          sites
            .find((s) => s.name === e.site)!
            .hosts.filter((h) => h.role === "firewall")
            .map((h) => `${h.name} /etc/wireguard/${t.name}.conf`),
        ),
      )
      .sort(),
  );
  // The committed sites' firewalls, by hand: their three partner tunnels (karlsruhe stands by for falkenstein too,
  // named in site-name order) and git's migration tunnel.
  assert.deepEqual(
    installed.filter((line) => /^(fra|fkb|vie|hel|fsn)-/.test(line)),
    [
      "fkb-fw-1 /etc/wireguard/wg-fkb-vie.conf",
      "fkb-fw-1 /etc/wireguard/wg-fsn-fkb.conf",
      "fkb-fw-2 /etc/wireguard/wg-fkb-vie.conf",
      "fkb-fw-2 /etc/wireguard/wg-fsn-fkb.conf",
      "fra-fw-1 /etc/wireguard/wg-fra-hel.conf",
      "fra-fw-2 /etc/wireguard/wg-fra-hel.conf",
      "fsn-fw-1 /etc/wireguard/wg-fsn-fkb.conf",
      "fsn-fw-2 /etc/wireguard/wg-fsn-fkb.conf",
      "hel-fw-1 /etc/wireguard/wg-fra-hel.conf",
      "hel-fw-1 /etc/wireguard/wg-hel-vie.conf",
      "hel-fw-2 /etc/wireguard/wg-fra-hel.conf",
      "hel-fw-2 /etc/wireguard/wg-hel-vie.conf",
      "vie-fw-1 /etc/wireguard/wg-fkb-vie.conf",
      "vie-fw-1 /etc/wireguard/wg-hel-vie.conf",
      "vie-fw-2 /etc/wireguard/wg-fkb-vie.conf",
      "vie-fw-2 /etc/wireguard/wg-hel-vie.conf",
    ],
  );
  const supernetOf = (code: string) => sites.find((s) => s.code === code)!.supernet;
  for (const { host, file } of tunnels) {
    const [, a, b] = /wg-([a-z]{3})-([a-z]{3})\.conf$/.exec(file.path)!;
    const own = host.slice(0, 3);
    const peer = own === a ? b : a;
    const parsed = parseWireGuardConfig(file.content);
    assert.deepEqual(
      parsed.peers.map((p) => p.allowedIps),
      [[supernetOf(peer)]],
      `${host} ${file.path}`,
    );
    assert.ok(file.secret && file.mode === "0600", "private keys are secret files");
  }
});
