/**
 * The compose runtime of the site twin: the rendered compose projects of a
 * virtualization host run with the real tools (Debian's `docker-compose` 1.29
 * against `podman system service`), their containers on the host's own
 * bridge, with the host's DNAT of published ports, in the host's network
 * namespace.
 *
 * No image registry is reachable here, so the twin runs one local image in
 * place of every rendered one (`buildTwinImage`): a root filesystem made from
 * what Debian's packages installed on this machine (busybox-static, and
 * libnfs-utils' `nfs-cp`/`nfs-cat`/`nfs-ls` with the shared libraries `ldd`
 * names) and the twin's application (`app/`), imported with `podman import`.
 * The application answers `GET /` with `<host> <rw|ro> <port> <name> <peer> <service> <access> <container>`,
 * reads and writes files of the service's trees on the storage export over
 * the network with libnfs (there is no kernel NFS client here), and answers a
 * banner line on the other published ports.
 *
 * One engine per virtualization host (`ContainerHost`): `podman system
 * service` entered into the host's network namespace (and the host machine's
 * mount namespace, when it has one), in a private mount and PID namespace of
 * its own (`unshare --mount --pid --kill-child`, catatonit as its init):
 * - its own store, run root, tmp dir and network configuration under the
 *   host's folder, and a fresh tmpfs on `/run` and `/dev/shm`, so the state
 *   podman keeps in global places (`/run/containers/networks` with netavark's
 *   IPAM database, `/run/netns/netns-*` of the containers, `/run/libpod`, the
 *   SHM lock segment `/dev/shm/libpod_lock`) stays with the engine: several
 *   hosts run the same project names, networks and subnets without meeting;
 * - killing its `unshare` ends the PID namespace, so every conmon, container
 *   and aardvark-dns dies with it (a crash of the host's machine kills the
 *   engine's processes in its network namespace, and with them the
 *   containers), and the mounts of its store vanish with its mount namespace.
 * Left outside: the containers' cgroups (`/sys/fs/cgroup/<controller>/libpod_parent/…`),
 * removed by `stop()`/`destroy()`, and the engine's bridge and iptables rules in
 * the host's namespace (removed with its networks by `stop()`).
 *
 * Needs root, `nsenter`, `unshare`, `setpriv` (util-linux), `podman` (4.3, netavark),
 * `runc`, `conmon`, `catatonit`, `docker-compose`, `tar`, `ldd`, busybox-static
 * and libnfs-utils.
 */
import { ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { parse, stringify } from "yaml";

/** The image every twin container runs (tag: the content hash of its root filesystem's inputs). */
export const TWIN_IMAGE_NAME = "localhost/standort-twin-app";
/** Bodies the twin's application writes to the export at most: libnfs fails NFSv4 writes above ~3.9 KB (LAB-NOTES). */
export const TWIN_APP_MAX_BODY = 3072;
/** Where `buildTwinImage` keeps its root filesystem tarballs across runs (one per content hash). */
export const TWIN_IMAGE_CACHE = process.env.STANDORT_TWIN_IMAGE_CACHE ?? join(tmpdir(), "standort-images");

const APP_DIR = join(__dirname, "app");
/** Limits of the engine's containers: below this machine's hard limits (no CAP_SYS_RESOURCE, LAB-NOTES). */
const CONTAINER_ULIMITS = ["nofile=4096:4096", "nproc=4096:4096"];
/** A version of the image layout: bump when `buildTwinImage` lays out the root filesystem differently. */
const IMAGE_LAYOUT = "1";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Result of a command. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without a shell; never rejects. */
function runCommand(
  argv: ReadonlyArray<string>,
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0],
      argv.slice(1),
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: options.env, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

async function mustRun(argv: ReadonlyArray<string>, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await runCommand(argv, options);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

function which(name: string): string {
  for (const dir of [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not installed`);
}

// ---------------------------------------------------------------------------------------------------------------
// The image

/** The files of the image's root filesystem: path in the image → path on this machine (their content goes in). */
function imageFiles(): Map<string, string> {
  const files = new Map<string, string>();
  files.set("/bin/busybox", which("busybox"));
  const nfsTools = ["nfs-cp", "nfs-cat", "nfs-ls"].map(which);
  for (const tool of nfsTools) files.set(`/usr/bin/${tool.split("/").pop()}`, tool);
  // The shared libraries the libnfs tools load, where the dynamic loader looks for them.
  const ldd = execFileSync("ldd", nfsTools, { encoding: "utf8", timeout: 10_000 });
  for (const line of ldd.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(0x/.exec(line);
    if (m) files.set(m[1], m[1]);
  }
  // Debian's python3.11 (python3.11-minimal, libpython3.11-stdlib) runs the app: its binary, its libraries and the
  // standard library without the parts an HTTP server never imports (tests, GUIs, build and packaging tools).
  const python = "/usr/bin/python3.11";
  files.set("/usr/bin/python3", python);
  for (const line of execFileSync("ldd", [python], { encoding: "utf8", timeout: 10_000 }).split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(0x/.exec(line);
    if (m) files.set(m[1], m[1]);
  }
  for (const file of pythonLibrary(PYTHON_LIBRARY)) files.set(file, file);
  for (const name of readdirSync(APP_DIR).sort()) files.set(`/app/${name}`, join(APP_DIR, name));
  return files;
}

/** The standard library's home and the folders of it the app never needs. */
const PYTHON_LIBRARY = "/usr/lib/python3.11";
const PYTHON_SKIPPED = new Set([
  "__pycache__",
  "test",
  "idlelib",
  "tkinter",
  "turtledemo",
  "ensurepip",
  "lib2to3",
  "pydoc_data",
  "site-packages",
  "dist-packages",
  "venv",
  "unittest",
  "distutils",
]);

/** Every file of the standard library the image carries, sorted. */
function pythonLibrary(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (PYTHON_SKIPPED.has(entry.name) || entry.name.startsWith("config-")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...pythonLibrary(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** The busybox applets to link in `/bin` (the app's shell, `nc`, `awk`…). */
function busyboxApplets(busybox: string): string[] {
  return execFileSync(busybox, ["--list"], { encoding: "utf8", timeout: 10_000 })
    .split("\n")
    .map((a) => a.trim())
    .filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox")
    .sort();
}

/** The content hash of the image: its layout, every file's path and content, the applet links. */
function imageHash(files: Map<string, string>, applets: ReadonlyArray<string>): string {
  // The builder's own code takes part: a change of the layout (modes, links, files) is a new image.
  const hash = createHash("sha256").update(`layout ${IMAGE_LAYOUT}\n${buildTwinImage.toString()}\n`);
  for (const [target, source] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(`file ${target}\n`);
    hash.update(readFileSync(source));
  }
  hash.update(`applets ${applets.join(" ")}\n`);
  return hash.digest("hex").slice(0, 16);
}

/** The cached root filesystem tarball of an image reference `buildTwinImage` returned. */
export function twinImageTar(ref: string): string {
  const tag = ref.split(":").pop() ?? "";
  if (!ref.startsWith(`${TWIN_IMAGE_NAME}:`) || !/^[0-9a-f]{16}$/.test(tag)) throw new Error(`${ref} is not a twin image`);
  return join(TWIN_IMAGE_CACHE, `standort-twin-app-${tag}.tar`);
}

/**
 * Builds the twin's container image (a root filesystem tarball for `podman
 * import`) from Debian's busybox-static and libnfs-utils on this machine and
 * the app in `app/`, once per content hash: a later call, in this run or
 * another, finds the tarball in `TWIN_IMAGE_CACHE`. Each `ContainerHost`
 * imports it into its own store at `start()` (~0.1 s). Returns the image
 * reference `localhost/standort-twin-app:<hash>`.
 */
export async function buildTwinImage(): Promise<string> {
  const files = imageFiles();
  const applets = busyboxApplets(files.get("/bin/busybox")!);
  const hash = imageHash(files, applets);
  const ref = `${TWIN_IMAGE_NAME}:${hash}`;
  const tar = twinImageTar(ref);
  if (existsSync(tar)) return ref;
  mkdirSync(TWIN_IMAGE_CACHE, { recursive: true });
  const stage = mkdtempSync(join(TWIN_IMAGE_CACHE, "stage-"));
  try {
    const root = join(stage, "root");
    for (const d of ["bin", "usr/bin", "app", "etc", "tmp", "proc", "sys", "dev", "run", "var/tmp"])
      mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, "tmp"), 0o1777);
    chmodSync(join(root, "var/tmp"), 0o1777);
    for (const [target, source] of files) {
      mkdirSync(dirname(join(root, target)), { recursive: true });
      copyFileSync(source, join(root, target));
      // Executables, and the shared objects (the kernel maps the dynamic loader only with its execute bit).
      chmodSync(join(root, target), 0o755);
    }
    for (const applet of applets) if (!existsSync(join(root, "bin", applet))) symlinkSync("busybox", join(root, "bin", applet));
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    writeFileSync(join(root, "etc/standort-twin-image"), `${ref}\n`);
    const partial = join(stage, "image.tar");
    await mustRun(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", root, "-cf", partial, "."]);
    // A rename: a concurrent build of the same hash leaves one complete tarball either way.
    renameSync(partial, tar);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return ref;
}

// ---------------------------------------------------------------------------------------------------------------
// The twin's variant of a rendered compose file

/** One published port of a rendered service. */
export interface PublishedPort {
  /** The host address it is published on, or undefined for every address. */
  readonly hostIp?: string;
  readonly hostPort?: number;
  readonly containerPort: number;
  readonly protocol: string;
}

/** A scalar of the parsed YAML as text ("" for anything else). */
function scalar(value: unknown): string {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : "";
}

function portRange(text: string): number[] {
  const [a, b] = text.split("-").map(Number);
  if (!Number.isInteger(a)) throw new Error(`${text} is not a port`);
  if (b === undefined) return [a];
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** The ports of a compose service, short (`[ip:]host:container[/proto]`) or long syntax. */
export function publishedPorts(service: Record<string, any>): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (const entry of (service.ports ?? []) as unknown[]) {
    if (typeof entry === "object" && entry !== null) {
      const e = entry as Record<string, unknown>;
      const hostIp = typeof e.host_ip === "string" && e.host_ip !== "0.0.0.0" && e.host_ip !== "" ? e.host_ip : undefined;
      const containers = portRange(scalar(e.target));
      const hosts = e.published === undefined ? [] : portRange(scalar(e.published));
      containers.forEach((c, i) => out.push({ hostIp, hostPort: hosts[i], containerPort: c, protocol: scalar(e.protocol) || "tcp" }));
      continue;
    }
    const text = String(entry);
    const [spec, protocol = "tcp"] = text.split("/");
    // An IPv6 host address comes in brackets: [::1]:20000:8080.
    const v6 = /^\[([^\]]+)\]:(.*)$/.exec(spec);
    const parts = v6 ? [v6[1], ...v6[2].split(":")] : spec.split(":");
    const containerText = parts.pop()!;
    const hostText = parts.pop();
    const ip = parts.pop();
    const hostIp = ip && ip !== "0.0.0.0" ? ip : undefined;
    const containers = portRange(containerText);
    const hosts = hostText ? portRange(hostText) : [];
    containers.forEach((c, i) => out.push({ hostIp, hostPort: hosts[i], containerPort: c, protocol }));
  }
  return out;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** The environment variable that carries a tree's export to the twin's application. */
export function nfsEnvName(tree: string): string {
  return `STANDORT_NFS_${tree.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/** The libnfs URL of an NFS volume of the rendered file (`nfs://<addr><device>?version=4`), or undefined for another volume. */
export function nfsUrl(volume: Record<string, any> | null | undefined): string | undefined {
  const opts = volume?.driver_opts as Record<string, unknown> | undefined;
  if (!opts || !/^nfs4?$/.test(scalar(opts.type))) return undefined;
  const o = scalar(opts.o);
  const addr = /(?:^|,)addr=([^,]+)/.exec(o)?.[1];
  const device = scalar(opts.device);
  if (!addr || !device.startsWith(":/")) throw new Error(`NFS volume without addr= or :/device: ${JSON.stringify(opts)}`);
  const version = /(?:^|,)(?:nfs)?vers=(\d)/.exec(o)?.[1] ?? "4";
  const host = addr.includes(":") ? `[${addr}]` : addr;
  return `nfs://${host}${device.slice(1)}?version=${version}`;
}

/** A service's volume mounts: the volume's name (for named volumes), its target and whether it is read-only. */
function serviceMounts(service: Record<string, any>): Array<{ source?: string; target: string; readOnly: boolean }> {
  return ((service.volumes ?? []) as unknown[]).map((v) => {
    if (typeof v === "object" && v !== null) {
      const e = v as Record<string, unknown>;
      return { source: typeof e.source === "string" ? e.source : undefined, target: scalar(e.target), readOnly: e.read_only === true };
    }
    const parts = String(v).split(":");
    const readOnly = parts.length === 3 && parts[2].split(",").includes("ro");
    return parts.length === 1 ? { target: parts[0], readOnly } : { source: parts[0], target: parts[1], readOnly };
  });
}

/** What the twin's variant of a rendered compose file runs. */
export interface TwinVariant {
  readonly yaml: string;
  /** Service → the container ports its app serves HTTP on (loopback-published) and answers a banner on (the rest). */
  readonly listeners: Readonly<Record<string, { http: number[]; banner: number[] }>>;
  /** Tree (volume name) → libnfs URL, for every NFS volume of the rendered file. */
  readonly trees: Readonly<Record<string, string>>;
}

const VARIANT_HEADER = `# The site twin's variant of the rendered compose file next to it (scripts/twin/containers.ts).
# The only substitution: no image registry is reachable in the twin and there is no kernel NFS client, so
# - every service runs the twin's local image (built from Debian's packages) with the twin's application as its
#   entrypoint and command, never pulled (pull_policy: never); healthcheck and working_dir went with the image;
# - every NFS volume becomes a plain local volume at the same target with the same read_only flag (so the mount
#   flags stay as rendered), and its export reaches the application as STANDORT_NFS_<TREE>=nfs://<addr><path>?version=N
#   (from the volume's driver_opts) with STANDORT_NFS_<TREE>_TARGET=<target>: the app reads and writes with libnfs;
# - STANDORT_TWIN_HOST and STANDORT_TWIN_CONTAINER name the host and the container in the app's answers.
# Services, ports, environment, env_file, user, restart, networks and read_only flags are the rendered ones.
`;

/**
 * Derives the twin's variant of a rendered compose file: see `VARIANT_HEADER`
 * for the one substitution. Ports published on a loopback address are the
 * serving container's (the host's ingress sends there): the app serves HTTP
 * on their container ports; every other published TCP port answers a banner
 * line. UDP ports get no listener.
 */
export function twinComposeVariant(rendered: string, options: { image: string; twinHost: string }): TwinVariant {
  const doc = parse(rendered) as Record<string, any>;
  if (!doc || typeof doc !== "object" || typeof doc.services !== "object") throw new Error("not a compose file: no services");
  const volumes = (doc.volumes ?? {}) as Record<string, Record<string, any> | null>;
  const trees: Record<string, string> = {};
  for (const [name, volume] of Object.entries(volumes)) {
    const url = nfsUrl(volume);
    if (url === undefined) continue;
    trees[name] = url;
    // A plain local volume: the mount point keeps its target and flags, the data goes over libnfs.
    volumes[name] = { driver: "local", ...(volume?.labels ? { labels: volume.labels } : {}) };
  }
  const listeners: Record<string, { http: number[]; banner: number[] }> = {};
  for (const [name, service] of Object.entries(doc.services as Record<string, Record<string, any>>)) {
    const ports = publishedPorts(service).filter((p) => p.protocol === "tcp");
    const http = [...new Set(ports.filter((p) => p.hostIp !== undefined && LOOPBACK.has(p.hostIp)).map((p) => p.containerPort))].sort(
      (a, b) => a - b,
    );
    const banner = [...new Set(ports.map((p) => p.containerPort))].filter((p) => !http.includes(p)).sort((a, b) => a - b);
    listeners[name] = { http, banner };
    const extra: Record<string, string> = { STANDORT_TWIN_HOST: options.twinHost, STANDORT_TWIN_CONTAINER: name };
    for (const mount of serviceMounts(service)) {
      if (mount.source === undefined || trees[mount.source] === undefined) continue;
      extra[nfsEnvName(mount.source)] = trees[mount.source];
      extra[`${nfsEnvName(mount.source)}_TARGET`] = mount.target;
    }
    const env = service.environment;
    if (Array.isArray(env)) service.environment = [...env, ...Object.entries(extra).map(([k, v]) => `${k}=${v}`)];
    else service.environment = { ...((env ?? {}) as Record<string, unknown>), ...extra };
    service.image = options.image;
    service.pull_policy = "never";
    service.entrypoint = ["/app/run"];
    service.command = ["--http", http.join(","), "--banner", banner.join(",")];
    delete service.healthcheck;
    delete service.working_dir;
    delete service.build;
  }
  return { yaml: VARIANT_HEADER + stringify(doc, { lineWidth: 0 }), listeners, trees };
}

// ---------------------------------------------------------------------------------------------------------------
// The engine of one virtualization host

export interface ContainerHostOptions {
  /** The virtualization host's name (the app's answers carry it unless `up` names another). */
  readonly name: string;
  /** The host's network namespace (`/run/netns/<ns>`). */
  readonly ns: string;
  /** A folder the twin owns for this engine: store, socket, logs, the compose variants. Emptied by `stop()`. */
  readonly dir: string;
  /** The host machine's persistent mount namespace file (machine.ts), when it has one: the engine and docker-compose run in it. */
  readonly mountFile?: string;
  /** The image from `buildTwinImage()`. @default built on `start()` */
  readonly image?: string;
  /** Progress lines. @default silent */
  readonly log?: (line: string) => void;
}

/** A container `up` started. */
export interface StartedContainer {
  readonly project: string;
  /** The compose service (the container's name in the footprint). */
  readonly service: string;
  /** The engine's container name (`<project>_<service>_1`). */
  readonly name: string;
  readonly id: string;
  readonly state: string;
  /** Published ports as the engine reports them. */
  readonly ports: ReadonlyArray<{ hostIp: string; hostPort: number; containerPort: number; protocol: string }>;
  /** The container ports the app serves HTTP on / answers a banner on. */
  readonly http: ReadonlyArray<number>;
  readonly banner: ReadonlyArray<number>;
}

/** Timings of one engine, in milliseconds. */
export interface ContainerHostTimings {
  start?: number;
  imageImport?: number;
  up: Record<string, number>;
}

/**
 * The container engine of one virtualization host (see the module comment).
 * `start()` runs it, `up()`/`down()` run compose projects with the real
 * docker-compose, `stop()` removes everything (also after a failure);
 * `destroy()` is the synchronous last resort for exit handlers.
 */
export class ContainerHost {
  readonly name: string;
  readonly ns: string;
  readonly dir: string;
  /** The engine's API socket (`DOCKER_HOST=unix://…`). */
  readonly socket: string;
  readonly timings: ContainerHostTimings = { up: {} };
  private image: string | undefined;
  private engine: ChildProcess | undefined;
  private pidNs: string | undefined;
  private readonly projects = new Map<string, string>();
  private readonly log: (line: string) => void;

  constructor(private readonly options: ContainerHostOptions) {
    this.name = options.name;
    this.ns = options.ns;
    this.dir = options.dir;
    this.socket = join(options.dir, "podman.sock");
    this.image = options.image;
    this.log = options.log ?? (() => undefined);
  }

  private path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** The argv prefix that enters the host (its network namespace, and its mount namespace when it has one). */
  private enter(): string[] {
    return ["nsenter", `--net=/run/netns/${this.ns}`, ...(this.options.mountFile ? [`--mount=${this.options.mountFile}`] : []), "--"];
  }

  /** The podman flags of this engine (the service and its conmons' cleanup commands use the same). */
  private podmanFlags(): string[] {
    return [
      "--root",
      this.path("store"),
      "--runroot",
      this.path("run"),
      "--tmpdir",
      this.path("tmp"),
      "--network-config-dir",
      this.path("networks"),
      "--cgroup-manager",
      "cgroupfs",
      "--runtime",
      "runc",
      "--events-backend",
      "file",
    ];
  }

  /** Runs the podman client against this engine's API. */
  podman(args: ReadonlyArray<string>, timeoutMs = 30_000): Promise<CommandResult> {
    return runCommand(["podman", "--remote", "--url", `unix://${this.socket}`, ...args], { timeoutMs });
  }

  private compose(project: string, file: string, args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<CommandResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: this.dir,
      DOCKER_HOST: `unix://${this.socket}`,
    };
    // In the host's mount namespace, so that the rendered file's env_file paths (/etc/standort/…) are the host's.
    const argv = [
      ...(this.options.mountFile ? ["nsenter", `--mount=${this.options.mountFile}`, "--"] : []),
      "docker-compose",
      "--ansi",
      "never",
      "-p",
      project,
      "-f",
      file,
      ...args,
    ];
    return runCommand(argv, { env, timeoutMs });
  }

  /** Starts the engine in the host's namespaces and imports the twin's image into its store. */
  async start(): Promise<void> {
    if (this.engine) throw new Error(`${this.name}: the container engine runs already`);
    const t0 = performance.now();
    this.image ??= await buildTwinImage();
    const tar = twinImageTar(this.image);
    for (const d of ["store", "run", "tmp", "networks", "compose", "log"]) mkdirSync(this.path(d), { recursive: true });
    writeFileSync(
      this.path("containers.conf"),
      [
        "[containers]",
        `default_ulimits = [${CONTAINER_ULIMITS.map((u) => JSON.stringify(u)).join(", ")}]`,
        'log_driver = "k8s-file"',
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'runtime = "runc"',
        'events_logger = "file"',
        "[network]",
        'network_backend = "netavark"',
        "",
      ].join("\n"),
    );
    // Inside the new mount namespace: fresh /run (netavark's state, the containers' netns files, /run/libpod) and
    // /dev/shm (podman's lock segment).
    const script = [
      "set -e",
      "mount -t tmpfs -o mode=0755 tmpfs /run",
      "mkdir -p /run/netns /run/lock",
      "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
      // and /var/lib: the image copy's blob cache (/var/lib/containers/cache) is a fixed path; nothing the engine
      // runs needs the machine's /var/lib (its store is under the host's folder).
      "mount -t tmpfs -o mode=0755 tmpfs /var/lib",
      // A host machine mounts its own sysfs (machine.ts), which hides the cgroup hierarchies runc needs: mount them again.
      ...cgroupMounts(),
      `export CONTAINERS_CONF=${this.path("containers.conf")}`,
      `exec catatonit -- podman ${this.podmanFlags().join(" ")} system service --time=0 unix://${this.socket}`,
    ].join("\n");
    const logFd = openSync(this.path("log", "engine.log"), "a");
    try {
      const argv = [
        ...this.enter(),
        // The engine dies with this process (a killed twin leaves no engine behind), and everything with the engine.
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sh",
        "-c",
        script,
      ];
      const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", logFd, logFd] });
      child.on("error", () => undefined);
      this.engine = child;
    } finally {
      closeSync(logFd);
    }
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (this.engine.exitCode !== null || this.engine.signalCode !== null) throw new Error("the engine exited");
        if (existsSync(this.socket) && (await this.podman(["version", "--format", "{{.Server.Version}}"], 5_000)).code === 0) break;
        if (Date.now() > deadline) throw new Error("no API socket after 20 s");
        await sleep(50);
      }
      this.pidNs = readlinkSync(`/proc/${this.engine.pid}/ns/pid_for_children`);
      this.timings.start = Math.round(performance.now() - t0);
      const t1 = performance.now();
      if ((await this.podman(["image", "exists", this.image])).code !== 0)
        await this.mustPodman(["import", "--change", 'CMD ["/app/run"]', tar, this.image], 60_000);
      this.timings.imageImport = Math.round(performance.now() - t1);
    } catch (error) {
      const why = `${this.name}: the container engine did not start: ${(error as Error).message}\n${this.engineLog()}`;
      this.destroy();
      throw new Error(why);
    }
    this.log(`${this.name}: container engine up (${this.timings.start} ms, image import ${this.timings.imageImport} ms)`);
  }

  /** The last lines of the engine's log. */
  engineLog(lines = 20): string {
    try {
      return readFileSync(this.path("log", "engine.log"), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  private async mustPodman(args: ReadonlyArray<string>, timeoutMs = 30_000): Promise<string> {
    const r = await this.podman(args, timeoutMs);
    if (r.code !== 0) throw new Error(`${this.name}: podman ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  /**
   * Runs a rendered compose project: writes the twin's variant
   * (`twinComposeVariant`) with the rendered file next to it under the
   * engine's folder (`compose/<project>/`), and runs the real
   * `docker-compose -p <project> -f <variant> up -d --remove-orphans`
   * against the engine. Waits (bounded) until every container runs; returns them.
   */
  async up(project: string, renderedComposeYaml: string, options: { twinHost?: string } = {}): Promise<StartedContainer[]> {
    if (!this.engine || !this.image) throw new Error(`${this.name}: start() the engine first`);
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(project)) throw new Error(`${project} is not a compose project name`);
    const t0 = performance.now();
    const variant = twinComposeVariant(renderedComposeYaml, { image: this.image, twinHost: options.twinHost ?? this.name });
    const folder = this.path("compose", project);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "compose.rendered.yaml"), renderedComposeYaml);
    const file = join(folder, "compose.yaml");
    writeFileSync(file, variant.yaml);
    this.projects.set(project, file);
    const r = await this.compose(project, file, ["up", "-d", "--remove-orphans"], 120_000);
    if (r.code !== 0)
      throw new Error(`${this.name}: docker-compose -p ${project} up exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-3000)}`);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const containers = await this.containers(project, variant.listeners);
      const expected = Object.keys(variant.listeners).length;
      // Running, and the app listening: it prints its line once every socket is bound.
      const listening = async (c: StartedContainer) => (await this.podman(["logs", c.id])).stdout.includes("standort twin app:");
      if (
        containers.length >= expected &&
        containers.every((c) => c.state === "running") &&
        (await Promise.all(containers.map(listening))).every(Boolean)
      ) {
        this.timings.up[project] = Math.round(performance.now() - t0);
        this.log(`${this.name}: ${project} up (${containers.length} containers, ${this.timings.up[project]} ms)`);
        return containers;
      }
      if (Date.now() > deadline) {
        const logs = await Promise.all(
          containers.map(async (c) => `${c.name} ${c.state}: ${(await this.podman(["logs", "--tail", "5", c.id])).stdout.trim()}`),
        );
        throw new Error(`${this.name}: ${project}: containers not running after 15 s:\n${logs.join("\n")}`);
      }
      await sleep(100);
    }
  }

  /** The containers of a project as the engine lists them. */
  async containers(project: string, listeners?: TwinVariant["listeners"]): Promise<StartedContainer[]> {
    const out = await this.mustPodman(["ps", "-a", "--filter", `label=com.docker.compose.project=${project}`, "--format", "json"]);
    const rows = JSON.parse(out || "[]") as Array<Record<string, any>>;
    return rows
      .map((row) => {
        const service = String(row.Labels?.["com.docker.compose.service"] ?? "");
        const ports = ((row.Ports ?? []) as Array<Record<string, any>>).flatMap((p) =>
          Array.from({ length: Number(p.range ?? 1) }, (_, i) => ({
            hostIp: String(p.host_ip ?? ""),
            hostPort: Number(p.host_port) + i,
            containerPort: Number(p.container_port) + i,
            protocol: String(p.protocol ?? "tcp"),
          })),
        );
        return {
          project,
          service,
          name: String((row.Names as string[] | undefined)?.[0] ?? ""),
          id: String(row.Id),
          state: String(row.State),
          ports,
          http: listeners?.[service]?.http ?? [],
          banner: listeners?.[service]?.banner ?? [],
        };
      })
      .sort((a, b) => a.service.localeCompare(b.service));
  }

  /** Stops and removes a project's containers, networks and volumes (`docker-compose down -v`). */
  async down(project: string): Promise<void> {
    const file = this.projects.get(project);
    if (!file) return;
    const r = await this.compose(project, file, ["down", "-v", "--remove-orphans", "-t", "2"], 60_000);
    if (r.code !== 0) throw new Error(`${this.name}: docker-compose -p ${project} down exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    this.projects.delete(project);
  }

  /**
   * Removes every container, network and volume, then the engine, its
   * processes, its containers' cgroups and its folder. Never throws; also
   * cleans up after a failed `start()` or `up()`.
   */
  async stop(): Promise<void> {
    if (this.engine && this.engine.exitCode === null && this.engine.signalCode === null && existsSync(this.socket)) {
      // Orderly first: the networks' bridges and iptables rules in the host's namespace go with them.
      await this.podman(["rm", "--all", "--force", "--time", "2"], 30_000);
      const networks = (await this.podman(["network", "ls", "--format", "{{.Name}}"], 10_000)).stdout
        .split("\n")
        .filter((n) => n && n !== "podman");
      if (networks.length > 0) await this.podman(["network", "rm", "--force", ...networks], 20_000);
    }
    this.destroy();
  }

  /**
   * Kills the engine and everything in its PID namespace (containers,
   * conmons, aardvark-dns), removes its containers' cgroups, the bridges it
   * left in the host's namespace and its folder. Synchronous, so it also
   * runs from an exit handler; idempotent.
   */
  destroy(): void {
    const engine = this.engine;
    this.engine = undefined;
    if (engine?.pid !== undefined) {
      const members = this.pidNs ? processesOf(this.pidNs) : [];
      try {
        process.kill(engine.pid, "SIGKILL");
      } catch {
        // gone already
      }
      // --kill-child: the engine's init dies with unshare, and the kernel kills its PID namespace.
      for (let i = 0; i < 200 && [engine.pid, ...members].some(alive); i++) sleepSync(25);
    }
    // The containers' cgroups (cgroupfs manager) outlive their processes; empty ones go, shared parents only when empty.
    const ids = existsSync(this.path("store", "overlay-containers")) ? readdirSync(this.path("store", "overlay-containers")) : [];
    removeCgroups(ids);
    // A bridge netavark made in the host's namespace (an orderly stop removed it with its network).
    try {
      const links = existsSync(`/run/netns/${this.ns}`)
        ? execFileSync("ip", ["-n", this.ns, "-o", "link", "show", "type", "bridge"], {
            encoding: "utf8",
            timeout: 5_000,
            stdio: ["ignore", "pipe", "ignore"],
          })
        : "";
      for (const m of links.matchAll(/^\d+: (podman\d+)[:@]/gm))
        execFileSync("ip", ["-n", this.ns, "link", "del", m[1]], { stdio: "ignore", timeout: 5_000 });
    } catch {
      // the namespace is gone
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.projects.clear();
    this.pidNs = undefined;
  }
}

/**
 * Shell lines that mount the machine's cgroup hierarchies (as this process
 * sees them) under `/sys/fs/cgroup` where they are missing: a network
 * namespace's own sysfs hides them (LAB-NOTES: `ip netns exec` hides cgroup mounts).
 */
function cgroupMounts(): string[] {
  const lines: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = left.split(" ")[4];
    const [fstype, , superOptions] = right.split(" ");
    if ((fstype !== "cgroup" && fstype !== "cgroup2") || !mountPoint?.startsWith("/sys/fs/cgroup")) continue;
    const options = (superOptions ?? "")
      .split(",")
      .filter((o) => o && o !== "rw")
      .join(",");
    const how = fstype === "cgroup" ? `-t cgroup -o ${options || "none"}` : "-t cgroup2";
    // Not `mountpoint`: the mounts hidden under the machine's sysfs still count as mount points there.
    lines.push(`[ -e ${mountPoint}/cgroup.procs ] || { mkdir -p ${mountPoint} && mount ${how} ${fstype} ${mountPoint}; }`);
  }
  if (lines.length === 0) return [];
  // The (empty) cgroup folder of a fresh sysfs takes no folders: a tmpfs first.
  return ['[ -n "$(ls /sys/fs/cgroup)" ] || mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup', ...lines];
}

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Every process in a PID namespace (by its `ns/pid` link) and its descendants (the containers, in nested namespaces). */
function processesOf(pidNs: string): number[] {
  const parents = new Map<number, number>();
  const members = new Set<number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (readlinkSync(`/proc/${pid}/ns/pid`) === pidNs) members.add(pid);
      parents.set(pid, Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0));
    } catch {
      // exited meanwhile
    }
  }
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, parent] of parents)
      if (!members.has(pid) && members.has(parent)) {
        members.add(pid);
        grew = true;
      }
  }
  return [...members];
}

/** Removes the cgroups of the given containers in every controller, then the shared parents when empty. */
function removeCgroups(ids: ReadonlyArray<string>): void {
  const base = "/sys/fs/cgroup";
  const hierarchies = existsSync(join(base, "cgroup.controllers"))
    ? [base]
    : readdirSync(base)
        .map((c) => join(base, c))
        .filter((p) => existsSync(join(p, "cgroup.procs")));
  for (const h of hierarchies) {
    const parent = join(h, "libpod_parent");
    if (!existsSync(parent)) continue;
    for (const id of ids) tryRmdir(join(parent, `libpod-${id}`), 20);
    tryRmdir(join(parent, "conmon"), 1);
    tryRmdir(parent, 1);
  }
}

function tryRmdir(path: string, attempts: number): void {
  for (let i = 0; i < attempts && existsSync(path); i++) {
    try {
      rmdirSync(path);
      return;
    } catch (error) {
      // EBUSY: processes still exiting (retry briefly), or another engine's (left alone).
      if ((error as NodeJS.ErrnoException).code !== "EBUSY") return;
      sleepSync(25);
    }
  }
}
