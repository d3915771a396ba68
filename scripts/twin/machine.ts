/**
 * One machine of the site twin: a network namespace plus a persistent mount
 * namespace, so that a host sees its own `/etc` (the rendered files laid over
 * the machine's `/etc` with overlayfs), its own `/run` and `/dev/log`, and its
 * own `/sys/class/net`. Daemons then run with their default paths and the
 * rendered scripts run unchanged: the failover script finds
 * `/etc/standort/provider.env` and writes `/run/standort` as on a real host.
 *
 * Nothing is connected to the machine's real interfaces: links are veth pairs
 * between twin namespaces (see `site.ts`).
 *
 * Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip`, `unshare`, `nsenter` and
 * overlayfs. Every machine is removed by `destroy()`, which is synchronous so
 * that it also runs from an exit handler.
 */
import { ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPOSITORY_ROOT } from "../../lib/model/load";

/** Result of a command run inside a machine. */
export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs a setup command in the root namespaces; throws with its stderr. */
export function must(argv: ReadonlyArray<string>, input?: string): string {
  try {
    return execFileSync(argv[0], argv.slice(1), {
      encoding: "utf8",
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      input,
      timeout: 20_000,
    });
  } catch (error) {
    const stderr = ((error as { stderr?: Buffer | string }).stderr ?? "").toString().trim();
    throw new Error(`${argv.join(" ")} failed: ${stderr || String(error)}`);
  }
}

/** Same as `must`, ignoring failures (teardown of what may be gone). */
export function quietly(argv: ReadonlyArray<string>): void {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: "ignore", timeout: 10_000 });
  } catch {
    // already gone
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

/** True while the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Device nodes a machine's private `/dev` gets from the real one (what a container runtime binds). */
const DEVICES = ["null", "zero", "full", "random", "urandom", "tty", "net/tun"];

/**
 * A machine: `create()` makes its namespaces; `exec`/`spawn` run programs in
 * it; `crash()` kills everything in it; `destroy()` removes it.
 */
export class Machine {
  /** The network namespace (`/run/netns/<ns>`). */
  readonly ns: string;
  /** The file the persistent mount namespace is bound to. */
  readonly mountFile: string;
  /** Twin-side folder of this machine: overlay layers, logs. */
  readonly dir: string;
  private readonly children = new Set<ChildProcess>();
  private created = false;

  /**
   * @param name the host's name (for logs)
   * @param ns network namespace name (≤ 15 characters is not required; keep it short)
   * @param dir a folder the twin owns for this machine
   * @param mountDir a private mount folder holding the mount namespace files
   * @param etcLayers folders laid over `/etc`, first wins (the rendered `etc` of the host, then twin extras)
   */
  constructor(
    readonly name: string,
    ns: string,
    dir: string,
    mountDir: string,
    private readonly etcLayers: ReadonlyArray<string>,
    private readonly binds: ReadonlyArray<{ source: string; target: string }> = [],
  ) {
    this.ns = ns;
    this.dir = dir;
    this.mountFile = join(mountDir, ns);
  }

  /** Creates the network namespace and the mount namespace, and lays out `/etc`, `/run`, `/dev` and `/sys`. */
  create(): void {
    if (this.created) throw new Error(`${this.name} exists already`);
    mkdirSync(join(this.dir, "upper"), { recursive: true });
    mkdirSync(join(this.dir, "work"), { recursive: true });
    mkdirSync(join(this.dir, "log"), { recursive: true });
    must(["ip", "netns", "add", this.ns]);
    this.created = true;
    must(["ip", "-n", this.ns, "link", "set", "lo", "up"]);
    writeFileSync(this.mountFile, "");
    const lower = [...this.etcLayers, "/etc"].join(":");
    const devices = DEVICES.map((d) => `mkdir -p "$(dirname "$D/${d}")" && touch "$D/${d}" && mount --bind /dev/${d} "$D/${d}"`).join(
      " && ",
    );
    const binds = this.binds.map((b) => `mount --bind ${b.source} ${b.target}`).join(" && ");
    const script = [
      "set -e",
      `mount -t overlay overlay -o lowerdir=${lower},upperdir=${join(this.dir, "upper")},workdir=${join(this.dir, "work")} /etc`,
      "mount -t tmpfs -o mode=0755 tmpfs /run",
      "mkdir -p /run/lock /run/systemd/journal",
      // A private /dev: the real device nodes a daemon needs, its own pts and shm, and /dev/log in its own /run.
      "D=$(mktemp -d /run/.dev.XXXXXX)",
      "mount -t tmpfs -o mode=0755 tmpfs $D",
      devices,
      "mkdir -p $D/pts $D/shm && mount -t devpts -o newinstance,ptmxmode=0666 devpts $D/pts && ln -s pts/ptmx $D/ptmx",
      "mount -t tmpfs -o mode=1777 tmpfs $D/shm",
      "ln -s /proc/self/fd $D/fd && ln -s /proc/self/fd/0 $D/stdin && ln -s /proc/self/fd/1 $D/stdout && ln -s /proc/self/fd/2 $D/stderr",
      "ln -s /run/systemd/journal/dev-log $D/log",
      "mount --move $D /dev",
      "rmdir $D",
      ...(binds ? [binds] : []),
    ].join("\n");
    must(["unshare", `--mount=${this.mountFile}`, "--propagation", "slave", "sh", "-c", script]);
    // /sys must be mounted from inside the network namespace to show its links.
    must(["nsenter", `--net=/run/netns/${this.ns}`, `--mount=${this.mountFile}`, "mount", "-t", "sysfs", "sysfs", "/sys"]);
  }

  /** The argv prefix that runs a program inside this machine. */
  enter(): string[] {
    // The repository as working directory: `node --import tsx` resolves tsx from there.
    return ["nsenter", `--net=/run/netns/${this.ns}`, `--mount=${this.mountFile}`, `--wd=${REPOSITORY_ROOT}`, "--"];
  }

  /** Runs a program in the machine; never rejects. */
  exec(argv: ReadonlyArray<string>, options: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    const full = [...this.enter(), ...argv];
    return new Promise((resolve) => {
      const child = execFile(
        full[0],
        full.slice(1),
        { timeout: options.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }

  /** Runs a program in the machine and throws when it fails. */
  async run(argv: ReadonlyArray<string>, options: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const r = await this.exec(argv, options);
    if (r.code !== 0) throw new Error(`${this.name}: ${argv.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  /**
   * Starts a long-running program in the machine, its output appended to
   * `log/<logName>.log`. The returned process is the program itself (nsenter
   * execs it), so its pid is the daemon's.
   */
  spawn(argv: ReadonlyArray<string>, logName: string, options: { stdin?: "pipe" | "ignore"; stdout?: "pipe" | "log" } = {}): ChildProcess {
    const log = openSync(join(this.dir, "log", `${logName}.log`), "a");
    try {
      const full = [...this.enter(), ...argv];
      const child = spawn(full[0], full.slice(1), {
        stdio: [options.stdin ?? "ignore", options.stdout === "pipe" ? "pipe" : log, log],
      });
      child.on("error", () => undefined);
      this.children.add(child);
      child.once("exit", () => this.children.delete(child));
      return child;
    } finally {
      closeSync(log);
    }
  }

  /** Path of one of the machine's log files. */
  logPath(logName: string): string {
    return join(this.dir, "log", `${logName}.log`);
  }

  /** The lines of a log file of the machine (syslog datagrams arrive unterminated: each starts with its `<priority>`). */
  lines(logName: string): string[] {
    try {
      const text = readFileSync(this.logPath(logName), "utf8");
      const split = logName === "syslog" ? text.split(/(?=<\d{1,3}>)/) : text.split("\n");
      return split.map((l) => l.trimEnd()).filter(Boolean);
    } catch {
      return [];
    }
  }

  /** The last lines of a log file of the machine. */
  tail(logName: string, lines = 30): string {
    return this.lines(logName).slice(-lines).join("\n");
  }

  /** Every process that lives in the machine's network namespace. */
  pids(): number[] {
    if (!existsSync(`/run/netns/${this.ns}`)) return [];
    try {
      return execFileSync("ip", ["netns", "pids", this.ns], { encoding: "utf8", timeout: 5_000 }).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /**
   * Kills every process of the machine at once (SIGSTOP first, so no daemon
   * sends a farewell or respawns a child, then SIGKILL), as a power cut does.
   * Returns the pids it killed.
   */
  killAll(): number[] {
    const pids = [...new Set([...this.pids(), ...[...this.children].map((c) => c.pid).filter((p): p is number => p !== undefined)])];
    for (const pid of pids) signal(pid, "SIGSTOP");
    // A power cut sends nothing: the links go down before the kernel closes the killed daemons' sockets, so
    // no FIN, RST or farewell advert leaves (peers notice by their own timers, as after a real power loss).
    if (this.created) {
      try {
        const links = execFileSync("ip", ["-n", this.ns, "-o", "link", "show"], { encoding: "utf8", timeout: 5_000 })
          .split("\n")
          .map((l) => /^\d+: ([^:@]+)[@:]/.exec(l)?.[1])
          .filter((l): l is string => l !== undefined && l !== "lo");
        if (links.length > 0)
          execFileSync("ip", ["-n", this.ns, "-batch", "-"], {
            input: links.map((l) => `link set ${l} down`).join("\n"),
            stdio: ["pipe", "ignore", "ignore"],
            timeout: 5_000,
          });
      } catch {
        // the namespace is gone already
      }
    }
    for (const pid of pids) signal(pid, "SIGKILL");
    for (let i = 0; i < 100 && pids.some(alive); i++) sleepSync(10);
    return pids;
  }

  /** Kills everything and removes both namespaces. Idempotent. */
  destroy(): void {
    if (!this.created) return;
    this.killAll();
    quietly(["umount", "-l", this.mountFile]);
    quietly(["rm", "-f", this.mountFile]);
    quietly(["ip", "netns", "del", this.ns]);
    this.created = false;
  }
}

/**
 * A folder whose mounts are private, to hold mount namespace files
 * (`unshare --mount=FILE` refuses a file on a shared mount). Returns a
 * function that releases it.
 */
export function privateMountDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  must(["mount", "--bind", dir, dir]);
  must(["mount", "--make-private", dir]);
  return () => quietly(["umount", "-l", dir]);
}
