// The twin's compose runtime (scripts/twin/containers.ts) in namespaces this test creates: two virtualization
// hosts (`vh`, `vh2`) each running its own container engine with the same project names, a client on a veth to
// `vh`, and a storage host running nfs-ganesha (VFS export) that `vh`'s containers reach with libnfs. The rendered
// compose files are written here in the shape the renderer produces; the real docker-compose runs them.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parse } from "yaml";
import { ContainerHost, TWIN_APP_MAX_BODY, buildTwinImage, twinComposeVariant } from "../scripts/twin/containers";
import { Machine, privateMountDir } from "../scripts/twin/machine";
import { requireNetns, requireTool, run } from "./helpers/tools";

/**
 * What the runtime and this test run. Debian packages: podman (with netavark, aardvark-dns), runc, conmon,
 * catatonit, docker-compose, busybox-static, libnfs-utils, nfs-ganesha and nfs-ganesha-vfs, curl, haproxy,
 * util-linux (nsenter, unshare), iproute2, tar, libc-bin (ldd).
 */
const TOOLS = [
  "nsenter",
  "unshare",
  "ip",
  "podman",
  "runc",
  "conmon",
  "catatonit",
  "docker-compose",
  "busybox",
  "nfs-cp",
  "nfs-cat",
  "nfs-ls",
  "tar",
  "ldd",
  "curl",
  "haproxy",
  "ganesha.nfsd",
];

const prefix = `tw${process.pid.toString(36)}_k`;
const ns = { vh: `${prefix}-vh`, vh2: `${prefix}-vh2`, cl: `${prefix}-cl`, st: `${prefix}-st` };
const STORAGE = "10.30.1.5";
const HOST_ON_CLIENT_LINK = "10.40.0.1";
const DIGEST = `sha256:${"0".repeat(64)}`;

const rendered = (project: string, access: "read-write" | "read-only", loopbackPort: number, sieve: boolean) => `services:
  webmail:
    image: registry.example.net/mail/roundcube:1.6.6@${DIGEST}
    restart: unless-stopped
    environment:
      STANDORT_SERVICE: mail
      STANDORT_ACCESS: ${access}
      ROUNDCUBEMAIL_DB_TYPE: mysql
    env_file: [SECRETS]
    ports: ["127.0.0.1:${loopbackPort}:8080"]
    volumes:
      - { type: volume, source: vmail, target: /var/vmail, read_only: ${access === "read-only"} }
${
  sieve
    ? `  sieve:
    image: registry.example.net/mail/dovecot:2.3.21@${DIGEST}
    restart: unless-stopped
    environment: { STANDORT_SERVICE: mail, STANDORT_ACCESS: ${access} }
    ports: ["4190:4190/tcp"]
    volumes:
      - { type: volume, source: vmail, target: /var/vmail, read_only: ${access === "read-only"} }
`
    : ""
}volumes:
  vmail:
    driver: local
    driver_opts: { type: nfs, o: "addr=${STORAGE},nfsvers=4.2,hard,timeo=600,${access === "read-only" ? "ro" : "rw"}", device: ":/srv/mail/vmail" }
# ${project}
`;

const hosts: ContainerHost[] = [];
let ganesha: ChildProcess | undefined;
let machine: Machine | undefined;
let releaseMounts: (() => void) | undefined;
let dir: string | undefined;
const cleanup = async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
  machine?.destroy();
  releaseMounts?.();
  releaseMounts = undefined;
  if (ganesha?.pid !== undefined && ganesha.exitCode === null) ganesha.kill("SIGKILL");
  for (const n of Object.values(ns)) if (existsSync(`/run/netns/${n}`)) execFileSync("ip", ["netns", "del", n], { stdio: "ignore" });
  if (dir) rmSync(dir, { recursive: true, force: true });
};
after(cleanup);

const inNs = (n: string, argv: string[], timeoutMs = 10_000) =>
  run(["nsenter", `--net=/run/netns/${n}`, "--", ...argv], { timeoutMs, input: "" });
/** An HTTP request from a namespace: the status (0 when none came) and the body. */
const curl = async (n: string, args: string[]) => {
  const r = await inNs(n, ["curl", "-s", "--max-time", "3", "-w", "\n%{http_code}", ...args]);
  const cut = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(cut + 1)) || 0, body: r.stdout.slice(0, Math.max(cut, 0)), code: r.code };
};
const listing = (d: string) => (existsSync(d) ? readdirSync(d, { recursive: true, encoding: "utf8" }).sort() : []);
const cgroupDirs = () =>
  readdirSync("/sys/fs/cgroup").flatMap((c) => {
    const p = join("/sys/fs/cgroup", c, "libpod_parent");
    return existsSync(p) ? readdirSync(p).filter((e) => e.startsWith("libpod-")) : [];
  });

test(
  "compose runtime: the real docker-compose on a per-host podman engine, the app on the storage export",
  { timeout: 120_000 },
  async (t) => {
    if (!requireNetns(t) || !requireTool(t, ...TOOLS)) return;
    const existing = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    t.diagnostic(`namespaces before: ${existing.split("\n").filter(Boolean).join(", ") || "none"}`);
    // Podman's container namespaces would show as /run/netns/netns-* (CNI: cni-*) on the machine.
    const podmanNetns = () => listing("/run/netns").filter((n) => /^(netns|cni)-/.test(n));
    // Where podman keeps state by default: the engines keep theirs in their own folder and namespaces.
    const podmanGlobals = ["/run/containers", "/run/libpod", "/var/lib/containers", "/etc/containers/networks", "/dev/shm/libpod_lock"];
    const globals = () => podmanGlobals.filter((p) => existsSync(p));
    const before = { conf: listing("/etc/cni/net.d"), lib: listing("/var/lib/cni"), netns: podmanNetns(), globals: globals() };
    const ids: string[] = [];

    // The image: built (or found in the cache) once per content hash.
    const b0 = performance.now();
    const image = await buildTwinImage();
    const b1 = performance.now();
    assert.equal(await buildTwinImage(), image, "the same content gives the same image");
    t.diagnostic(`image ${image}: first call ${Math.round(b1 - b0)} ms, cached call ${Math.round(performance.now() - b1)} ms`);

    dir = mkdtempSync(join(tmpdir(), "standort-containers-"));
    const exportDir = join(dir, "export");
    mkdirSync(exportDir);
    mkdirSync(join(dir, "recovery"));
    const secrets = join(dir, "secrets.env");
    writeFileSync(secrets, "ROUNDCUBEMAIL_DES_KEY=twin-secret\n");

    // vh2 is a site twin machine (machine.ts): its own mount namespace with the rendered /etc laid over the
    // machine's, where the rendered env_file lives; its engine and docker-compose run in that mount namespace.
    const etc = join(dir, "etc-vh2");
    mkdirSync(join(etc, "standort/compose/mail"), { recursive: true });
    writeFileSync(join(etc, "standort/compose/mail/secrets.env"), "ROUNDCUBEMAIL_DES_KEY=vh2-secret\n");
    releaseMounts = privateMountDir(join(dir, "mnt"));
    machine = new Machine("vh2", ns.vh2, join(dir, "machine-vh2"), join(dir, "mnt"), [etc]);
    machine.create();

    // Cabling: client ↔ vh (the client stands for another segment), vh ↔ storage.
    for (const n of [ns.vh, ns.cl, ns.st]) {
      execFileSync("ip", ["netns", "add", n]);
      execFileSync("ip", ["-n", n, "link", "set", "lo", "up"]);
    }
    const veth = (a: string, an: string, aAddr: string, b: string, bn: string, bAddr: string) => {
      execFileSync("ip", ["link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b]);
      execFileSync("ip", ["-n", a, "addr", "add", aAddr, "dev", an]);
      execFileSync("ip", ["-n", b, "addr", "add", bAddr, "dev", bn]);
      execFileSync("ip", ["-n", a, "link", "set", an, "up"]);
      execFileSync("ip", ["-n", b, "link", "set", bn, "up"]);
    };
    veth(ns.vh, "eth0", `${HOST_ON_CLIENT_LINK}/24`, ns.cl, "eth0", "10.40.0.2/24");
    veth(ns.vh, "eth1", "10.30.1.10/24", ns.st, "eth0", `${STORAGE}/24`);

    // The storage export: nfs-ganesha (VFS), NFSv4 only (no rpcbind: its socket is one for the whole machine).
    const conf = join(dir, "ganesha.conf");
    writeFileSync(
      conf,
      [
        `NFS_CORE_PARAM { Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; Bind_addr = ${STORAGE}; Plugins_Dir = /usr/lib/x86_64-linux-gnu/ganesha; }`,
        `NFSv4 { Graceless = true; RecoveryRoot = ${join(dir, "recovery")}; Only_Numeric_Owners = true; }`,
        `EXPORT { Export_Id = 1; Path = ${exportDir}; Pseudo = /srv/mail/vmail; Protocols = 4; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }`,
        "",
      ].join("\n"),
    );
    // In a mount namespace of its own with a fresh /run: ganesha keeps state there (/run/ganesha, libblkid's /run/blkid).
    const serve = `mount -t tmpfs tmpfs /run && mkdir -p /run/ganesha && exec ganesha.nfsd -F -f ${conf} -L ${join(dir, "ganesha.log")} -p /run/ganesha.pid`;
    ganesha = spawn("nsenter", [`--net=/run/netns/${ns.st}`, "--", "unshare", "--mount", "--propagation", "private", "sh", "-c", serve], {
      stdio: "ignore",
    });

    try {
      const vh = new ContainerHost({ name: "vh", ns: ns.vh, dir: join(dir, "engine-vh"), image });
      const vh2 = new ContainerHost({ name: "vh2", ns: ns.vh2, dir: join(dir, "engine-vh2"), image, mountFile: machine.mountFile });
      hosts.push(vh, vh2);
      await Promise.all([vh.start(), vh2.start()]);
      t.diagnostic(
        `engine start: vh ${vh.timings.start} ms (+ import ${vh.timings.imageImport} ms), vh2 ${vh2.timings.start} ms (+ import ${vh2.timings.imageImport} ms)`,
      );

      const rw = rendered("mail", "read-write", 20000, true).replace("SECRETS", secrets);
      const ro = rendered("mail-ro", "read-only", 20001, false).replace("SECRETS", secrets);
      const variant = twinComposeVariant(rw, { image, twinHost: "vh" });
      assert.deepEqual(variant.listeners, { webmail: { http: [8080], banner: [] }, sieve: { http: [], banner: [4190] } });
      assert.deepEqual(variant.trees, { vmail: `nfs://${STORAGE}/srv/mail/vmail?version=4` });

      const started = await vh.up("mail", rw);
      const startedRo = await vh.up("mail-ro", ro);
      const started2 = await vh2.up(
        "mail",
        rendered("mail", "read-write", 20000, true).replace("SECRETS", "/etc/standort/compose/mail/secrets.env"),
      );
      ids.push(...[...started, ...startedRo, ...started2].map((c) => c.id));
      t.diagnostic(`up: vh mail ${vh.timings.up.mail} ms, vh mail-ro ${vh.timings.up["mail-ro"]} ms, vh2 mail ${vh2.timings.up.mail} ms`);
      assert.deepEqual(
        started.map((c) => [c.service, c.state]),
        [
          ["sieve", "running"],
          ["webmail", "running"],
        ],
      );
      assert.deepEqual(
        startedRo.map((c) => [c.service, c.state]),
        [["webmail", "running"]],
      );
      assert.equal(started2.length, 2, "the same project runs on a second host's engine");

      await t.test("the serving container answers on its loopback port with its service, access, host and container", async () => {
        assert.deepEqual(await curl(ns.vh, ["http://127.0.0.1:20000/"]), {
          status: 200,
          body: "vh rw - 127.0.0.1 - mail read-write webmail\n",
          code: 0,
        });
        assert.deepEqual(await curl(ns.vh, ["http://127.0.0.1:20001/"]), {
          status: 200,
          body: "vh ro - 127.0.0.1 - mail read-only webmail\n",
          code: 0,
        });
        const other = await curl(ns.vh2, ["http://127.0.0.1:20000/"]);
        assert.equal(other.body, "vh2 rw - 127.0.0.1 - mail read-write webmail\n", "the second host's project answers with its own name");
        const banner = await inNs(ns.vh, ["curl", "-s", "--max-time", "3", "telnet://127.0.0.1:4190"]);
        assert.equal(banner.stdout, "mail sieve 4190\n");
      });

      await t.test("an ingress in the host's namespace (HAProxy) reaches the loopback port; a client reaches the ingress", async () => {
        const cfg = join(dir!, "haproxy.cfg");
        writeFileSync(
          cfg,
          [
            "global",
            `  pidfile ${join(dir!, "haproxy.pid")}`,
            "defaults",
            "  mode http",
            "  timeout connect 2s",
            "  timeout client 5s",
            "  timeout server 5s",
            "frontend rw",
            "  bind :8443",
            "  default_backend mail",
            "backend mail",
            "  server webmail 127.0.0.1:20000",
            "",
          ].join("\n"),
        );
        const haproxy = spawn("nsenter", [`--net=/run/netns/${ns.vh}`, "--", "haproxy", "-db", "-f", cfg], { stdio: "ignore" });
        try {
          let answer = { status: 0, body: "", code: 0 };
          for (let i = 0; i < 40 && answer.status !== 200; i++) {
            answer = await curl(ns.cl, [`http://${HOST_ON_CLIENT_LINK}:8443/`]);
            if (answer.status !== 200) await new Promise((r) => setTimeout(r, 50));
          }
          assert.deepEqual(answer, { status: 200, body: `vh rw - ${HOST_ON_CLIENT_LINK} - mail read-write webmail\n`, code: 0 });
        } finally {
          haproxy.kill("SIGKILL");
        }
      });

      await t.test("the rendered environment and env_file reach the container", async () => {
        const id = started.find((c) => c.service === "webmail")!.id;
        const env = (await vh.podman(["exec", id, "env"])).stdout;
        for (const line of [
          "ROUNDCUBEMAIL_DB_TYPE=mysql",
          "ROUNDCUBEMAIL_DES_KEY=twin-secret",
          "STANDORT_SERVICE=mail",
          "STANDORT_ACCESS=read-write",
        ])
          assert.ok(env.includes(line), `${line} in\n${env}`);
        // On the machine, the rendered path /etc/standort/compose/mail/secrets.env is the machine's own file.
        const id2 = started2.find((c) => c.service === "webmail")!.id;
        assert.match((await vh2.podman(["exec", id2, "env"])).stdout, /^ROUNDCUBEMAIL_DES_KEY=vh2-secret$/m);
      });

      await t.test("the read-only project mounts its volume read-only and refuses a write", async () => {
        const mounts = async (h: ContainerHost, id: string) =>
          JSON.parse((await h.podman(["inspect", id, "--format", "{{json .Mounts}}"])).stdout) as Array<{
            Destination: string;
            RW: boolean;
          }>;
        const roWeb = startedRo.find((c) => c.service === "webmail")!;
        const rwWeb = started.find((c) => c.service === "webmail")!;
        assert.deepEqual(
          (await mounts(vh, roWeb.id)).map((m) => [m.Destination, m.RW]),
          [["/var/vmail", false]],
        );
        assert.deepEqual(
          (await mounts(vh, rwWeb.id)).map((m) => [m.Destination, m.RW]),
          [["/var/vmail", true]],
        );
        const touch = await vh.podman(["exec", roWeb.id, "touch", "/var/vmail/x"]);
        assert.match(touch.stderr + touch.stdout, /Read-only file system/);
        const put = await curl(ns.vh, ["-X", "PUT", "--data-binary", "nope", "http://127.0.0.1:20001/files/vmail/ro.txt"]);
        assert.equal(put.status, 403, put.body);
        assert.equal(existsSync(join(exportDir, "ro.txt")), false);
      });

      await t.test(
        "the loopback port is closed to another segment; the port published on every address is open (no filter yet)",
        async () => {
          const loop = await curl(ns.cl, [`http://${HOST_ON_CLIENT_LINK}:20000/`]);
          assert.equal(loop.code, 7, `20000 is refused at the client (curl exit 7), not answered: ${loop.body}`);
          const banner = await inNs(ns.cl, ["curl", "-s", "--max-time", "3", `telnet://${HOST_ON_CLIENT_LINK}:4190`]);
          assert.equal(banner.stdout, "mail sieve 4190\n");
        },
      );

      await t.test("a write through the app lands on the NFS export and reads back, also through the read-only instance", async () => {
        const body = `written by the twin ${Date.now()}\n`;
        const put = await curl(ns.vh, ["-X", "PUT", "--data-binary", body, "http://127.0.0.1:20000/files/vmail/hello.txt"]);
        assert.equal(put.status, 201, put.body);
        assert.equal(readFileSync(join(exportDir, "hello.txt"), "utf8"), body, "the file is on the exported folder");
        assert.deepEqual(await curl(ns.vh, ["http://127.0.0.1:20000/files/vmail/hello.txt"]), { status: 200, body, code: 0 });
        assert.deepEqual(
          await curl(ns.vh, ["http://127.0.0.1:20001/files/vmail/hello.txt"]),
          { status: 200, body, code: 0 },
          "the read-only instance reads it",
        );
        assert.equal((await curl(ns.vh, ["http://127.0.0.1:20000/files/vmail/missing.txt"])).status, 404);
        // libnfs fails NFSv4 writes above ~3.9 KB: the app refuses larger bodies outright.
        const size = (n: number) =>
          curl(ns.vh, ["-X", "PUT", "--data-binary", "x".repeat(n), `http://127.0.0.1:20000/files/vmail/size-${n}.txt`]);
        assert.equal((await size(TWIN_APP_MAX_BODY)).status, 201);
        assert.equal(readFileSync(join(exportDir, `size-${TWIN_APP_MAX_BODY}.txt`), "utf8").length, TWIN_APP_MAX_BODY);
        assert.equal((await size(TWIN_APP_MAX_BODY + 1)).status, 413);
      });

      await t.test("down removes a project", async () => {
        await vh.down("mail-ro");
        assert.deepEqual(await vh.containers("mail-ro"), []);
        assert.equal((await curl(ns.vh, ["http://127.0.0.1:20001/"])).code, 7);
      });

      await t.test("a file docker-compose refuses fails up() with the tool's message", async () => {
        const broken = rendered("broken", "read-write", 20002, false).replace("SECRETS", join(dir!, "no-such.env"));
        await assert.rejects(vh.up("broken", broken), /docker-compose -p broken up exited 1: .*no-such\.env/s);
      });

      await t.test("an engine that cannot start fails start() and leaves nothing", async () => {
        const failed = new ContainerHost({ name: "none", ns: `${prefix}-none`, dir: join(dir!, "engine-none"), image });
        await assert.rejects(failed.start(), /none: the container engine did not start/);
        assert.equal(existsSync(join(dir!, "engine-none")), false);
      });

      await t.test("a crash of the host's machine takes the engine and its containers with it", async () => {
        const pids = machine!.killAll();
        assert.ok(pids.length > 0);
        const engine = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
          .split("\n")
          .filter((l) => l.includes(join(dir!, "engine-vh2")));
        assert.deepEqual(engine, [], "no podman or conmon of vh2's engine survives");
        // The containers (in their own network namespaces) die with the engine's PID namespace.
        const procs = (id: string) => {
          try {
            return readFileSync(`/sys/fs/cgroup/pids/libpod_parent/libpod-${id}/cgroup.procs`, "utf8").trim();
          } catch {
            return "";
          }
        };
        for (let i = 0; i < 40 && started2.some((c) => procs(c.id) !== ""); i++) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(
          started2.map((c) => procs(c.id)),
          ["", ""],
          "no container process of vh2 survives",
        );
        vh2.destroy();
      });
    } finally {
      const s0 = performance.now();
      await cleanup();
      t.diagnostic(`teardown ${Math.round(performance.now() - s0)} ms`);
    }

    // Nothing left: namespaces, engines and their containers, CNI/netavark files, cgroups, the folder.
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.startsWith(prefix));
    assert.deepEqual(left, [], "every namespace of the test is removed");
    const processes = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes(dir!) && !l.includes("ps -eo"));
    assert.deepEqual(processes, [], "no podman, conmon or container process is left");
    assert.deepEqual(
      { conf: listing("/etc/cni/net.d"), lib: listing("/var/lib/cni"), netns: podmanNetns(), globals: globals() },
      before,
      "no CNI or netns file is left",
    );
    assert.deepEqual(
      cgroupDirs().filter((c) => ids.some((id) => c === `libpod-${id}`)),
      [],
      "no container cgroup is left",
    );
    assert.equal(existsSync(dir), false);
  },
);

test("the twin's variant keeps the rendered file and substitutes only the image and the NFS volumes", () => {
  const file = `services:
  app:
    image: registry.example.net/x/app:1@${DIGEST}
    command: ["serve"]
    healthcheck: { test: ["CMD", "wget", "-q", "localhost"] }
    user: "33:33"
    environment: ["STANDORT_SERVICE=shop", "STANDORT_ACCESS=read-write"]
    env_file: [/etc/standort/compose/shop/secrets.env]
    ports: ["127.0.0.1:20010:8080", { target: 9000, published: 9000, protocol: tcp }, "[::1]:20011:8081", "5353:5353/udp", "7000-7001:7000-7001"]
    volumes: ["data:/srv/data:ro", "cache:/cache"]
volumes:
  data: { driver: local, driver_opts: { type: nfs, o: "addr=10.30.1.5,nfsvers=4.2,hard", device: ":/srv/shop/data" } }
  cache: {}
`;
  const v = twinComposeVariant(file, { image: "localhost/standort-twin-app:0123456789abcdef", twinHost: "vie-virt-1" });
  assert.deepEqual(v.listeners, { app: { http: [8080, 8081], banner: [7000, 7001, 9000] } });
  assert.deepEqual(v.trees, { data: "nfs://10.30.1.5/srv/shop/data?version=4" });
  const doc = parse(v.yaml);
  const app = doc.services.app;
  assert.equal(app.image, "localhost/standort-twin-app:0123456789abcdef");
  assert.equal(app.pull_policy, "never");
  assert.deepEqual(app.entrypoint, ["/app/run"]);
  assert.deepEqual(app.command, ["--http", "8080,8081", "--banner", "7000,7001,9000"]);
  assert.equal(app.healthcheck, undefined);
  assert.equal(app.user, "33:33");
  assert.deepEqual(app.env_file, ["/etc/standort/compose/shop/secrets.env"]);
  assert.deepEqual(app.ports, parse(file).services.app.ports, "ports as rendered");
  assert.deepEqual(app.volumes, ["data:/srv/data:ro", "cache:/cache"], "mounts and their flags as rendered");
  assert.deepEqual(app.environment, [
    "STANDORT_SERVICE=shop",
    "STANDORT_ACCESS=read-write",
    "STANDORT_TWIN_HOST=vie-virt-1",
    "STANDORT_TWIN_CONTAINER=app",
    "STANDORT_NFS_DATA=nfs://10.30.1.5/srv/shop/data?version=4",
    "STANDORT_NFS_DATA_TARGET=/srv/data",
  ]);
  assert.deepEqual(doc.volumes, { data: { driver: "local" }, cache: {} }, "the NFS volume becomes a plain local one; others stay");
  assert.match(v.yaml, /^# The site twin's variant/);
});
