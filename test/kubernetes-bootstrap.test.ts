// The cluster bootstrap script and its unit, run for real against stand-in kubeadm and curl on PATH
// that record their calls: init happens once, never twice; joins wait for the endpoint and happen once.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { KUBERNETES_PATHS, kubernetesHostFiles, placeholderBootstrapValues } from "../lib/kubernetes";
import { requireTool, run } from "./helpers/tools";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const scratch = mkdtempSync(join(tmpdir(), "standort-k8s-bootstrap-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A host's rendered files laid out under a fresh root, stand-ins for kubeadm and curl beside them. */
function hostRoot(siteName: string, host: string, label: string): { root: string; bin: string; calls: string; script: string } {
  const root = join(scratch, `${host}-${label}`);
  const files = kubernetesHostFiles(site(siteName), sites, placeholderBootstrapValues(site(siteName)))[host];
  for (const f of files) {
    mkdirSync(dirname(join(root, f.path)), { recursive: true });
    writeFileSync(join(root, f.path), f.content, { mode: parseInt(f.mode, 8) });
  }
  const bin = join(root, "stand-ins");
  const calls = join(root, "calls");
  mkdirSync(bin, { recursive: true });
  writeFileSync(calls, "");
  // kubeadm records its argv; init writes admin.conf, join writes kubelet.conf, as the real one does.
  writeFileSync(
    join(bin, "kubeadm"),
    [
      "#!/bin/sh",
      'printf "%s\\n" "$*" >>"$CALLS"',
      'case "$1 ${2:-}" in',
      '"init --upload-certs") mkdir -p "$STANDORT_ROOT/etc/kubernetes" && echo admin >"$STANDORT_ROOT/etc/kubernetes/admin.conf" ;;',
      '"join --config") mkdir -p "$STANDORT_ROOT/etc/kubernetes" && echo kubelet >"$STANDORT_ROOT/etc/kubernetes/kubelet.conf" ;;',
      "esac",
      "",
    ].join("\n"),
  );
  // curl answers as the API does: with the status in $API_STATUS (000: nothing listens).
  writeFileSync(join(bin, "curl"), ["#!/bin/sh", 'printf "%s\\n" "curl $*" >>"$CALLS"', 'printf "%s" "${API_STATUS:-000}"', ""].join("\n"));
  // No waiting in tests: sleep returns at once but is recorded.
  writeFileSync(join(bin, "sleep"), ["#!/bin/sh", 'printf "%s\\n" "sleep $*" >>"$CALLS"', ""].join("\n"));
  for (const tool of ["kubeadm", "curl", "sleep"]) chmodSync(join(bin, tool), 0o755);
  return { root, bin, calls, script: join(root, KUBERNETES_PATHS.bootstrapScript) };
}

async function runScript(h: ReturnType<typeof hostRoot>, apiStatus = "000") {
  return run([
    "env",
    `PATH=${h.bin}:/usr/bin:/bin`,
    `STANDORT_ROOT=${h.root}`,
    `CALLS=${h.calls}`,
    `API_STATUS=${apiStatus}`,
    "sh",
    h.script,
  ]);
}
const kubeadmCalls = (h: ReturnType<typeof hostRoot>) =>
  readFileSync(h.calls, "utf8")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("curl ") && !l.startsWith("sleep "));

test("every bootstrap script passes sh -n", async () => {
  for (const name of ["frankfurt", "helsinki"]) {
    for (const [host, files] of Object.entries(kubernetesHostFiles(site(name), sites, placeholderBootstrapValues(site(name))))) {
      const script = files.find((f) => f.path === KUBERNETES_PATHS.bootstrapScript)!;
      const path = join(scratch, `${host}.sh`);
      writeFileSync(path, script.content);
      const result = await run(["sh", "-n", path]);
      assert.equal(result.code, 0, `${host}: ${result.stderr}`);
    }
  }
});

test("the first node runs kubeadm init once: a second run only renews the token and the certificates", async () => {
  const h = hostRoot("frankfurt", "fra-virt-1", "twice");
  const first = await runScript(h);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(kubeadmCalls(h), [`init --upload-certs --config ${h.root}${KUBERNETES_PATHS.kubeadmConfig}`]);
  assert.ok(existsSync(join(h.root, KUBERNETES_PATHS.initialisedMarker)));
  // kube-vip ends with admin.conf, the variant it runs once init has bound admin.conf's rights.
  assert.equal(
    readFileSync(join(h.root, "etc/kubernetes/manifests/kube-vip.yaml"), "utf8"),
    readFileSync(join(h.root, KUBERNETES_PATHS.kubeVipManifest), "utf8"),
  );

  const second = await runScript(h, "200");
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(kubeadmCalls(h), [
    `init --upload-certs --config ${h.root}${KUBERNETES_PATHS.kubeadmConfig}`,
    `token create --config ${h.root}${KUBERNETES_PATHS.kubeadmConfig}`,
    `init phase upload-certs --upload-certs --config ${h.root}${KUBERNETES_PATHS.kubeadmConfig}`,
  ]);
  assert.match(second.stderr, /the cluster exists .*: no kubeadm init/);
});

test("the first node refuses kubeadm init when it was initialised before or another member serves the API", async () => {
  const h = hostRoot("frankfurt", "fra-virt-1", "refuse");
  assert.equal((await runScript(h)).code, 0);
  // admin.conf lost after a completed init: a second init would create a second cluster.
  rmSync(join(h.root, KUBERNETES_PATHS.adminConf));
  const lost = await runScript(h);
  assert.equal(lost.code, 1);
  assert.match(lost.stderr, /kubeadm init completed here before .* refusing a second init/);
  assert.equal(kubeadmCalls(h).filter((c) => c.startsWith("init --upload-certs")).length, 1);

  // A rebuilt first node while the other members still serve the endpoint: no init either.
  const fresh = hostRoot("frankfurt", "fra-virt-1", "rebuilt");
  const answered = await runScript(fresh, "401");
  assert.equal(answered.code, 1);
  assert.match(answered.stderr, /the API at 10\.10\.4\.6:6443 answers: the cluster exists elsewhere; refusing kubeadm init/);
  assert.deepEqual(kubeadmCalls(fresh), []);
});

test("a joining node waits for the endpoint, joins once, and does nothing once it is a node", async () => {
  const h = hostRoot("helsinki", "hel-virt-3", "join");
  const early = await runScript(h, "000");
  assert.equal(early.code, 1, "no endpoint yet: fail, systemd retries");
  assert.match(early.stderr, /did not answer within 600 s: not joining yet/);
  assert.deepEqual(kubeadmCalls(h), []);
  assert.equal(
    readFileSync(h.calls, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("sleep ")).length,
    60,
  );

  const joined = await runScript(h, "401");
  assert.equal(joined.code, 0, joined.stderr);
  const again = await runScript(h, "401");
  assert.equal(again.code, 0);
  assert.deepEqual(kubeadmCalls(h), [`join --config ${h.root}${KUBERNETES_PATHS.kubeadmConfig}`]);
  // helsinki's endpoint is the provider's load balancer: no kube-vip on its nodes.
  assert.equal(existsSync(join(h.root, "etc/kubernetes/manifests/kube-vip.yaml")), false);
});

test("frankfurt's joining control-plane nodes start kube-vip after the join; its worker does not", async () => {
  const cp = hostRoot("frankfurt", "fra-virt-2", "cp");
  assert.equal((await runScript(cp, "200")).code, 0);
  assert.ok(existsSync(join(cp.root, "etc/kubernetes/manifests/kube-vip.yaml")));
  const worker = hostRoot("frankfurt", "fra-virt-4", "worker");
  assert.equal((await runScript(worker, "200")).code, 0);
  assert.equal(existsSync(join(worker.root, "etc/kubernetes/manifests/kube-vip.yaml")), false);
});

test("systemd-analyze accepts the bootstrap unit and reports a broken one", async (t) => {
  if (!requireTool(t, "systemd-analyze")) return;
  const files = kubernetesHostFiles(site("frankfurt"), sites, placeholderBootstrapValues(site("frankfurt")))["fra-virt-1"];
  const unit = files.find((f) => f.path === KUBERNETES_PATHS.bootstrapUnit)!;
  const dir = join(scratch, "units");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "standort-kubernetes-bootstrap.service"), unit.content);
  const ok = await run(["systemd-analyze", "verify", join(dir, "standort-kubernetes-bootstrap.service")]);
  assert.equal(ok.stderr.trim(), "", ok.stderr);
  writeFileSync(join(dir, "standort-kubernetes-broken.service"), unit.content.replace("Type=oneshot", "Type=oneshoot"));
  const broken = await run(["systemd-analyze", "verify", join(dir, "standort-kubernetes-broken.service")]);
  assert.match(broken.stderr, /Failed to parse service type, ignoring: oneshoot/);
});
