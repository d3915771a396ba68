import test from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { runUnderMocks } from "../lib/preview/harness";
import { Replication } from "../components/replication";
import { PlannedJob, siteJobs, systemdCalendar } from "../lib/footprint/jobs";
import { example, withService } from "./fixtures/footprint/example";

const KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{ name: admin, user: { token: not-a-real-token } }]\n";

async function underMocks(jobs: ReadonlyArray<PlannedJob>) {
  return runUnderMocks({
    stack: "helsinki",
    config: { "standort:kubeconfig": KUBECONFIG },
    secretKeys: ["standort:kubeconfig"],
    program: () => {
      const config = new pulumi.Config("standort");
      const replication = new Replication("hel-replication", { kubeconfig: config.requireSecret("kubeconfig"), jobs });
      return { schedules: replication.schedules, namespace: replication.namespace.metadata.name };
    },
  });
}

test("a Kubernetes site's backups become CronJobs under one secret-configured provider; its file copies do not", async () => {
  const { footprint, sites } = example();
  const run = await underMocks(siteJobs(footprint, sites, "helsinki"));
  // Six backups (two services x two local stores + one off-site); the four file copies run on the storage hosts.
  assert.deepEqual(
    run.resources.map((r) => [r.type, r.name, r.parent?.split("::").pop()]),
    [
      ["kubernetes:batch/v1:CronJob", "hel-replication-git-backup-hel-stor-1", "hel-replication"],
      ["kubernetes:batch/v1:CronJob", "hel-replication-git-backup-hel-stor-2", "hel-replication"],
      // The off-site backup of each service helsinki writes, into its standby's (frankfurt's) store.
      ["kubernetes:batch/v1:CronJob", "hel-replication-git-backup-offsite-frankfurt", "hel-replication"],
      ["kubernetes:batch/v1:CronJob", "hel-replication-webhosting-backup-hel-stor-1", "hel-replication"],
      ["kubernetes:batch/v1:CronJob", "hel-replication-webhosting-backup-hel-stor-2", "hel-replication"],
      ["kubernetes:batch/v1:CronJob", "hel-replication-webhosting-backup-offsite-frankfurt", "hel-replication"],
      ["kubernetes:core/v1:Namespace", "hel-replication-namespace", "hel-replication"],
      ["pulumi:providers:kubernetes", "hel-replication-provider", "hel-replication"],
      ["standort:footprint:Replication", "hel-replication", undefined],
    ],
  );
  const provider = run.resources.find((r) => r.type === "pulumi:providers:kubernetes")!;
  assert.equal(provider.inputs.kubeconfig, "[secret]");
  assert.equal(JSON.stringify(run.resources).includes("not-a-real-token"), false, "the kubeconfig never appears in plain text");
});

test("CronJob schedules are the backups' daily starts; the copies' RPO schedule is their timers'", async () => {
  const { footprint, sites } = example();
  const run = await underMocks(siteJobs(footprint, sites, "helsinki"));
  assert.deepEqual(run.outputs.schedules, {
    "git-backup-hel-stor-1": "31 1 * * *",
    "git-backup-hel-stor-2": "31 3 * * *",
    // The off-site copy starts two hours after the second local one.
    "git-backup-offsite-frankfurt": "31 5 * * *",
    "webhosting-backup-hel-stor-1": "21 1 * * *",
    "webhosting-backup-hel-stor-2": "21 3 * * *",
    "webhosting-backup-offsite-frankfurt": "21 5 * * *",
  });
  assert.equal(run.outputs.namespace, "standort-replication");
  // A tighter RPO tightens the timer of that service's copies only (webhosting's RPO is 10 min, git's 15), and no CronJob.
  const calendar = (jobs: ReadonlyArray<PlannedJob>, key: string) => {
    const job = jobs.find((j) => j.key === key)!;
    assert.ok(job.kind === "file-copy" && job.runner === "systemd", key);
    return systemdCalendar(job);
  };
  const before = siteJobs(footprint, sites, "helsinki");
  assert.equal(calendar(before, "webhosting-files-htdocs-to-frankfurt"), "*-*-* *:00/10:00");
  assert.equal(calendar(before, "git-files-repositories-to-frankfurt"), "*-*-* *:00/15:00");
  const tighter = withService(footprint, "webhosting", (s) => ({ ...s, recovery: { ...s.recovery, rpoMinutes: 3 } }));
  const after = siteJobs(tighter, sites, "helsinki");
  assert.equal(calendar(after, "webhosting-files-htdocs-to-frankfurt"), "*-*-* *:00/03:00");
  assert.equal(calendar(after, "git-files-repositories-to-frankfurt"), "*-*-* *:00/15:00");
  const again = await underMocks(after);
  assert.deepEqual(again.outputs.schedules, run.outputs.schedules);
});

test("CronJobs land in the component's namespace and never run twice at once", async () => {
  const { footprint, sites } = example();
  const run = await underMocks(siteJobs(footprint, sites, "helsinki"));
  for (const r of run.resources.filter((x) => x.type === "kubernetes:batch/v1:CronJob")) {
    const inputs = r.inputs as { metadata: { namespace: string }; spec: { concurrencyPolicy: string; timeZone: string } };
    assert.equal(inputs.metadata.namespace, "standort-replication", r.name);
    assert.equal(inputs.spec.concurrencyPolicy, "Forbid", r.name);
    assert.equal(inputs.spec.timeZone, "Etc/UTC", r.name);
  }
});

test("jobs of a compose site (backups under systemd) are refused before any resource exists", () => {
  const { footprint, sites } = example();
  assert.throws(() => new Replication("vie-replication", { kubeconfig: "unused", jobs: siteJobs(footprint, sites, "vienna") }), {
    // The first periodic job by key: the off-site backup sorts before the local ones.
    message: "Replication runs Kubernetes backups only: mail-backup-offsite-karlsruhe runs under systemd at vienna",
  });
});
