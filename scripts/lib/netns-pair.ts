/**
 * A failover pair on a bench: both members of a rendered pair as network
 * namespaces running the REAL keepalived with the rendered keepalived.conf and
 * failover script, joined by a third "switch" namespace that holds one Linux
 * bridge per segment. Nothing is connected to the machine's own interfaces:
 * every link is a veth pair between these namespaces, so no packet leaves them.
 *
 * Shared by test/failover-netns.test.ts and scripts/failover-bench.ts (one
 * implementation). Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip` and
 * `keepalived`.
 *
 * What the lab changes in the rendered files, and why (each is a harness
 * need, not a renderer fix; see `rewriteKeepalivedConfig`):
 * - `notify_*` run `<dir>/<host>/notify.sh` instead of FAILOVER_SCRIPT: a
 *   wrapper that sets PATH (stubs first), STANDORT_RUN_DIR and
 *   STANDORT_PROVIDER_ENV and then runs the rendered failover script
 *   unmodified. (keepalived 2.2.7 hands its own environment to notify
 *   scripts; the wrapper states the environment in one file instead of
 *   depending on whatever environment the caller started keepalived with, and
 *   timestamps each call in notify.log.)
 * - each `vrrp_script` command (`systemctl is-active --quiet haproxy` for the
 *   proxy pair) becomes `<dir>/<host>/bin/track <name>`, which succeeds while
 *   the file `<dir>/<host>/services/<name>` exists: no systemd runs in a
 *   namespace, and a file the test controls lets it take a service away.
 */
import { ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { HostModel, PairModel, SiteModel } from "../../lib/model/model";
import { interfaceName } from "../../lib/render/interfaces";
import { FAILOVER_SCRIPT, renderFailoverScript, renderKeepalivedConfig, renderProviderEnv } from "../../lib/render/keepalived";
import type { RenderSecrets } from "../../lib/render/types";

/** How often the VIP monitor looks at both members (ms); also the split-brain tolerance unit. */
export const POLL_MS = 100;

/** Obviously fake secrets for the lab (never real ones). */
export function labSecrets(model: SiteModel): RenderSecrets {
  return { vrrp: Object.fromEntries(model.pairs.map((p) => [p.name, "fake-vr"])), providerApiToken: "fake-token" };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs a command without a shell; resolves with exit code and output, never rejects. */
function exec(argv: ReadonlyArray<string>, timeoutMs = 5_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs a setup command; throws with its stderr when it fails. */
function must(...argv: string[]): string {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
  } catch (error) {
    const stderr = ((error as { stderr?: Buffer | string }).stderr ?? "").toString().trim();
    throw new Error(`${argv.join(" ")} failed: ${stderr || String(error)}`);
  }
}

/** Same as `must`, but failures are ignored (teardown of things that may be gone already). */
function quietly(...argv: string[]): void {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: "ignore", timeout: 10_000 });
  } catch {
    // already gone
  }
}

function namespaceExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** Pids of every process in a namespace (keepalived, its children, running notify scripts). */
function namespacePids(name: string): number[] {
  if (!namespaceExists(name)) return [];
  try {
    return execFileSync("ip", ["netns", "pids", name], { encoding: "utf8", timeout: 5_000 }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

/** True while the process exists and is not a zombie (a zombie holds no sockets and no addresses). */
export function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Blocks for `ms` (teardown must also work from a synchronous exit handler). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** One sample of the VIP monitor: which members held the pair's VIP(s) at `at` (performance.now() ms). */
export interface VipSample {
  readonly at: number;
  readonly holders: ReadonlyArray<string>;
}

/** A member of the pair on the bench. */
interface Member {
  readonly host: HostModel;
  readonly ns: string;
  readonly dir: string;
  /** The lab's letter for it: `a` for the first member of the pair, `b` for the second. */
  readonly letter: string;
  process?: ChildProcess;
}

export interface PairLabOptions {
  /** Distinguishes this lab's namespaces from others': `so-<tag>-<pid>-{a,b,sw}`. */
  readonly tag: string;
  readonly model: SiteModel;
  readonly pair: PairModel;
  readonly secrets?: RenderSecrets;
}

/**
 * Rewrites a rendered keepalived.conf for the lab (see the module comment):
 * the failover script path and each tracked script. Throws when the config
 * does not contain what is rewritten, so a renderer change shows up here
 * rather than as a silently different run.
 */
export function rewriteKeepalivedConfig(config: string, hostDir: string): { config: string; tracked: string[] } {
  const notify = join(hostDir, "notify.sh");
  const notifyCount = config.split(FAILOVER_SCRIPT).length - 1;
  if (notifyCount !== 4) throw new Error(`expected 4 notify lines naming ${FAILOVER_SCRIPT}, found ${notifyCount}`);
  let rewritten = config.split(FAILOVER_SCRIPT).join(notify);
  const tracked: string[] = [];
  rewritten = rewritten.replace(/vrrp_script (\S+) \{\n\tscript "[^"]*"/g, (_match, name: string) => {
    tracked.push(name);
    return `vrrp_script ${name} {\n\tscript "${join(hostDir, "bin", "track")} ${name}"`;
  });
  const blocks = (config.match(/^vrrp_script /gm) ?? []).length;
  if (tracked.length !== blocks) throw new Error(`rewrote ${tracked.length} of ${blocks} vrrp_script commands`);
  return { config: rewritten, tracked };
}

/**
 * The pair on the bench. `start()` builds the switch and both members;
 * `destroy()` (synchronous, idempotent; also run on process exit) removes
 * every process, namespace and file the lab made.
 */
export class PairLab {
  readonly model: SiteModel;
  readonly pair: PairModel;
  readonly dir: string;
  readonly switchNs: string;
  readonly segments: ReadonlyArray<string>;
  /** Tracked scripts (vrrp_script names) of the rendered config. */
  tracked: ReadonlyArray<string> = [];
  private readonly members: Map<string, Member>;
  private readonly secrets: RenderSecrets;
  private destroyed = false;
  private readonly onExit = () => this.destroy();

  constructor(options: PairLabOptions) {
    this.model = options.model;
    this.pair = options.pair;
    this.secrets = options.secrets ?? labSecrets(options.model);
    if (this.pair.dissolved) throw new Error(`${this.pair.name} is dissolved: there is no failover to test`);
    const prefix = `so-${options.tag}-${process.pid}`;
    this.switchNs = `${prefix}-sw`;
    this.dir = mkdtempSync(join(tmpdir(), `standort-${options.tag}-`));
    this.members = new Map(
      this.pair.members.map((name, i) => {
        const host = this.model.hosts.find((h) => h.name === name);
        if (!host) throw new Error(`${name} is not a host of ${this.model.name}`);
        const letter = i === 0 ? "a" : "b";
        return [name, { host, ns: `${prefix}-${letter}`, dir: join(this.dir, name), letter }];
      }),
    );
    // Every segment either member joins gets a bridge, so each host has all its model addresses.
    this.segments = [...new Set(this.pair.members.flatMap((m) => this.member(m).host.interfaces.map((i) => i.segment)))].sort();
    process.once("exit", this.onExit);
  }

  /** Namespace names, for cleanup checks. */
  namespaces(): string[] {
    return [this.switchNs, ...[...this.members.values()].map((m) => m.ns)];
  }

  private member(host: string): Member {
    const m = this.members.get(host);
    if (!m) throw new Error(`${host} is not a member of ${this.pair.name}`);
    return m;
  }

  /** Builds the switch, renders both members' files and boots both members. */
  start(): void {
    must("ip", "netns", "add", this.switchNs);
    must("ip", "-n", this.switchNs, "link", "set", "lo", "up");
    this.segments.forEach((_segment, i) => {
      // STP off (the default): a bridge port forwards at once, as a switch port without STP does.
      must("ip", "-n", this.switchNs, "link", "add", `br${i}`, "type", "bridge");
      must("ip", "-n", this.switchNs, "link", "set", `br${i}`, "up");
    });
    for (const m of this.members.values()) this.writeFiles(m);
    for (const m of this.members.values()) this.boot(m.host.name);
  }

  /** Renders the member's files into its folder: config (rewritten), failover script, provider.env, stubs. */
  private writeFiles(m: Member): void {
    const name = m.host.name;
    for (const sub of ["bin", "run", "services"]) mkdirSync(join(m.dir, sub), { recursive: true, mode: 0o755 });
    const rendered = renderKeepalivedConfig(this.model, name, this.secrets);
    const { config, tracked } = rewriteKeepalivedConfig(rendered, m.dir);
    this.tracked = tracked;
    writeFileSync(join(m.dir, "keepalived.rendered.conf"), rendered, { mode: 0o600 });
    writeFileSync(join(m.dir, "keepalived.conf"), config, { mode: 0o600 });
    // The rendered failover script, byte for byte: it is run, not rewritten.
    writeFileSync(join(m.dir, "standort-failover.sh"), renderFailoverScript(this.model, name, this.secrets), { mode: 0o755 });
    const env = renderProviderEnv(this.model, name, this.secrets, { providerEnv: { FAILOVER_MOVE_COMMAND: "true" } });
    if (env !== undefined) writeFileSync(join(m.dir, "provider.env"), env, { mode: 0o600 });
    const bin = join(m.dir, "bin");
    const script = (file: string, body: string) => {
      writeFileSync(join(bin, file), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      chmodSync(join(bin, file), 0o755); // keepalived's script security refuses group/other-writable scripts
    };
    // keepalived runs this in place of FAILOVER_SCRIPT (see the module comment).
    writeFileSync(
      join(m.dir, "notify.sh"),
      [
        "#!/bin/sh",
        "# Lab wrapper: stubs first on PATH, state and provider.env in the lab folder, then the rendered script.",
        `PATH=${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
        `STANDORT_RUN_DIR=${join(m.dir, "run")}`,
        `STANDORT_PROVIDER_ENV=${join(m.dir, "provider.env")}`,
        "export PATH STANDORT_RUN_DIR STANDORT_PROVIDER_ENV",
        `echo "$(date +%s.%N) $*" >> ${join(m.dir, "notify.log")}`,
        `exec /bin/sh ${join(m.dir, "standort-failover.sh")} "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    script("track", `# Lab stand-in for the tracked service check: up while the file exists.\n[ -e ${join(m.dir, "services")}/"$1" ]`);
    // The fence command (ssh ... poweroff) must never leave the lab: record it and report success.
    script("ssh", `echo "$*" >> ${join(m.dir, "fence.log")}`);
    script("logger", `shift $(($# - 1)); echo "$1" >> ${join(m.dir, "failover.log")}`);
    // Only reached when fencing fails three times: "the peer answers", so the script never treats it as down on a guess.
    script("ping", "exit 0");
    for (const t of tracked) writeFileSync(join(m.dir, "services", t), "");
  }

  /** Creates the member's namespace and links (its "power on") and starts keepalived in it. */
  boot(host: string): void {
    const m = this.member(host);
    if (namespaceExists(m.ns)) throw new Error(`${m.ns} exists already: ${host} is running`);
    must("ip", "netns", "add", m.ns);
    must("ip", "-n", m.ns, "link", "set", "lo", "up");
    // IPv6 plays no part in the pair; without it no link-local chatter or DAD delays the links.
    must("ip", "netns", "exec", m.ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1");
    m.host.interfaces.forEach((iface) => {
      const port = `${m.letter}${this.segments.indexOf(iface.segment)}`;
      const ifname = interfaceName(iface.segment);
      must("ip", "-n", this.switchNs, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", m.ns);
      must("ip", "-n", this.switchNs, "link", "set", port, "master", `br${this.segments.indexOf(iface.segment)}`, "up");
      must("ip", "-n", m.ns, "addr", "add", `${iface.address}/${iface.prefixLength}`, "dev", ifname);
      must("ip", "-n", m.ns, "link", "set", ifname, "up");
    });
    const log = openSync(join(m.dir, "keepalived.log"), "a");
    try {
      m.process = spawn(
        "ip",
        [
          "netns",
          "exec",
          m.ns,
          "keepalived",
          "--dont-fork",
          "--log-console",
          "--log-detail",
          // The lab's log goes to keepalived.log, not to the machine's syslog.
          "--no-syslog",
          "--use-file",
          join(m.dir, "keepalived.conf"),
          "--pid",
          join(m.dir, "keepalived.pid"),
          "--vrrp_pid",
          join(m.dir, "vrrp.pid"),
          "--checkers_pid",
          join(m.dir, "checkers.pid"),
          "--bfd_pid",
          join(m.dir, "bfd.pid"),
        ],
        { stdio: ["ignore", log, log] },
      );
      m.process.on("error", () => undefined);
    } finally {
      closeSync(log);
    }
  }

  /**
   * The member's machine dies: every process in its namespace is frozen
   * (SIGSTOP, so keepalived cannot send a farewell advert or respawn a child),
   * then killed (SIGKILL), and the namespace with its links is removed, as
   * the NICs of a powered-off machine go away. Returns when it is gone.
   */
  async powerOff(host: string): Promise<void> {
    const m = this.member(host);
    const pids = this.pidsOf(m);
    for (const pid of pids) signal(pid, "SIGSTOP");
    for (const pid of pids) signal(pid, "SIGKILL");
    for (let i = 0; i < 50 && pids.some(running); i++) await sleep(20);
    quietly("ip", "netns", "del", m.ns);
    m.process = undefined;
    for (let i = 0; i < 50 && namespaceExists(m.ns); i++) await sleep(20);
    for (const f of ["keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"]) rmSync(join(m.dir, f), { force: true });
  }

  /**
   * The member's processes: keepalived's pid files (only pids whose command
   * line names this member's config, so a stale file never hits a stranger),
   * node's own child, and whatever else runs in the namespace.
   */
  private pidsOf(m: Member): number[] {
    const conf = join(m.dir, "keepalived.conf");
    const ours = (pid: number | undefined): pid is number => {
      try {
        return pid !== undefined && readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(conf);
      } catch {
        return false;
      }
    };
    const fromFiles = ["keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"].map((f) => readPid(join(m.dir, f))).filter(ours);
    const child = m.process && m.process.exitCode === null && m.process.signalCode === null ? [m.process.pid] : [];
    return [...new Set([...child.filter(ours), ...fromFiles, ...namespacePids(m.ns)])];
  }

  /**
   * Cuts (or heals) the member's link into a segment at the switch: its port
   * leaves the bridge but stays up, so the member's interface keeps its
   * carrier and only the frames stop, as when a switch or VLAN fails between
   * two healthy hosts. (Taking the port down instead drops the carrier, which
   * keepalived sees on its own interface and answers with FAULT.)
   */
  partition(host: string, segment: string, cut: boolean): void {
    const m = this.member(host);
    const index = this.segments.indexOf(segment);
    if (index < 0 || !m.host.interfaces.some((i) => i.segment === segment)) throw new Error(`${host} has no link in ${segment}`);
    const port = `${m.letter}${index}`;
    if (cut) must("ip", "-n", this.switchNs, "link", "set", port, "nomaster");
    else must("ip", "-n", this.switchNs, "link", "set", port, "master", `br${index}`);
  }

  /** How many failover scripts are still running on a member (a passive one sleeps through its grace period). */
  notifyScriptsRunning(host: string): number {
    const script = join(this.member(host).dir, "standort-failover.sh");
    return namespacePids(this.member(host).ns).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(script);
      } catch {
        return false;
      }
    }).length;
  }

  /** Takes a tracked service away (false) or gives it back (true) on a member. */
  setService(host: string, name: string, up: boolean): void {
    const file = join(this.member(host).dir, "services", name);
    if (up) writeFileSync(file, "");
    else if (existsSync(file)) unlinkSync(file);
  }

  /** The failover script's recorded state (`master`, `backup`, `fault`, `stop`) on a member, if any. */
  failoverState(host: string): string | undefined {
    try {
      // The state file holds "master <takeover token>" on a master: the state is its first word.
      return readFileSync(join(this.member(host).dir, "run", `failover-${this.pair.name}.state`), "utf8")
        .trim()
        .split(" ")[0];
    } catch {
      return undefined;
    }
  }

  /** True when the failover script left the pair role's active flag on the member. */
  activeFlag(host: string): boolean {
    return existsSync(join(this.member(host).dir, "run", `${this.pair.role}-active`));
  }

  /** Lines a member's failover script logged (the logger stub's output). */
  failoverLog(host: string): string[] {
    return this.lines(host, "failover.log");
  }

  /** Fence commands the member ran (the ssh stub's arguments, one per line). */
  fenceCalls(host: string): string[] {
    return this.lines(host, "fence.log");
  }

  /** keepalived's own log of a member (for failure messages). */
  keepalivedLog(host: string, last = 40): string {
    return this.lines(host, "keepalived.log").slice(-last).join("\n");
  }

  private lines(host: string, file: string): string[] {
    try {
      return readFileSync(join(this.member(host).dir, file), "utf8")
        .split("\n")
        .filter(Boolean);
    } catch {
      return [];
    }
  }

  /** Which members hold every VIP of the pair right now (a member whose namespace is gone holds nothing). */
  async vipHolders(): Promise<string[]> {
    const checks = await Promise.all(
      [...this.members.values()].map(async (m) => {
        if (!namespaceExists(m.ns)) return false;
        const results = await Promise.all(
          this.pair.vips.map((v) => exec(["ip", "-n", m.ns, "-4", "-o", "addr", "show", "dev", interfaceName(v.segment)])),
        );
        return this.pair.vips.every((v, i) => results[i].stdout.includes(` ${v.address}/${v.prefixLength} `));
      }),
    );
    return [...this.members.values()].filter((_m, i) => checks[i]).map((m) => m.host.name);
  }

  /**
   * Removes every process, namespace and file of the lab; returns the pids it
   * killed (keepalived, its children, notify scripts still in their grace
   * sleep), so a caller can check none survived. Synchronous and idempotent.
   */
  destroy(): number[] {
    if (this.destroyed) return [];
    this.destroyed = true;
    process.removeListener("exit", this.onExit);
    const killed: number[] = [];
    for (const m of this.members.values()) {
      const pids = this.pidsOf(m);
      for (const pid of pids) signal(pid, "SIGSTOP");
      for (const pid of pids) signal(pid, "SIGKILL");
      killed.push(...pids);
    }
    // Bounded: SIGKILL cannot be caught, so this only waits for the kernel.
    for (let i = 0; i < 100 && killed.some(running); i++) sleepSync(20);
    for (const m of this.members.values()) quietly("ip", "netns", "del", m.ns);
    quietly("ip", "netns", "del", this.switchNs);
    rmSync(this.dir, { recursive: true, force: true });
    return killed;
  }
}

/**
 * Polls which members hold the VIP every `POLL_MS` and keeps every sample,
 * so that waits and the split-brain check see the same history.
 */
export class VipMonitor {
  readonly samples: VipSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly lab: PairLab) {
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    while (this.running) {
      const at = performance.now();
      const holders = await this.lab.vipHolders();
      this.samples.push({ at, holders });
      const wait = POLL_MS - (performance.now() - at);
      if (wait > 0) await sleep(wait);
    }
  }

  /** The first sample from now on that satisfies `test`, or undefined after `timeoutMs`. */
  async waitFor(test: (holders: ReadonlyArray<string>) => boolean, timeoutMs: number): Promise<VipSample | undefined> {
    const from = performance.now();
    let seen = this.samples.length;
    while (performance.now() - from < timeoutMs) {
      for (; seen < this.samples.length; seen++) {
        if (this.samples[seen].at >= from && test(this.samples[seen].holders)) return this.samples[seen];
      }
      await sleep(POLL_MS / 4);
    }
    return undefined;
  }

  /** Waits until exactly `host` holds the VIP (and the peer does not). */
  waitForSoleHolder(host: string, timeoutMs: number): Promise<VipSample | undefined> {
    return this.waitFor((h) => h.length === 1 && h[0] === host, timeoutMs);
  }

  /** The longest run of consecutive samples in which more than one member held the VIP. */
  longestSplitBrain(): { samples: number; from?: number } {
    let best = { samples: 0, from: undefined as number | undefined };
    let run = 0;
    let start = 0;
    for (const s of this.samples) {
      if (s.holders.length > 1) {
        if (run === 0) start = s.at;
        run++;
        if (run > best.samples) best = { samples: run, from: start };
      } else run = 0;
    }
    return best;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Median of numbers (mean of the middle two for an even count). */
export function median(values: ReadonlyArray<number>): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Waits (bounded) until `check` is true; returns whether it became true. */
export async function until(check: () => boolean, timeoutMs: number, stepMs = POLL_MS): Promise<boolean> {
  const from = performance.now();
  while (!check()) {
    if (performance.now() - from >= timeoutMs) return false;
    await sleep(stepMs);
  }
  return true;
}
