/**
 * The twin's init: what systemd would start on a host, started the way the
 * Debian units start it, in the host's machine. No systemd runs in a network
 * namespace here, so the rendered scripts' `systemctl` calls reach a
 * stand-in (`SYSTEMCTL_STANDIN`) that answers `is-active` from the units this
 * init started and brings the partner tunnels up and down (`wg-quick@`), and
 * refuses every other verb with systemd's exit code for an unknown unit.
 *
 * Units and their Debian start commands:
 * - `syslog`: a socket at `/dev/log` (socat), so `logger` lines land in the machine's `log/syslog.log`
 * - `ssh`: `sshd -D -e -f <twin sshd_config>` (OpenSSH; the provider image runs it on every host)
 * - `haproxy`: `haproxy -W -db -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid` (haproxy.service's -Ws without systemd)
 * - `pdns`: `pdns_server --guardian=no --daemon=no …` (pdns.service), on the proxies
 * - `prometheus-node-exporter` on every host, `prometheus` on the hosts with its rendered configuration (the storage pair)
 * - `bird`: `bird -f -c /etc/bird/bird.conf -s /run/bird/bird.ctl` (bird.service)
 * - `keepalived`: `keepalived --dont-fork --log-console --log-detail` (keepalived.service)
 * - stand-ins for workloads that do not exist yet (`standin.ts`); the storage hosts' one is the `nfs-server` unit
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Machine } from "./machine";

/** Where a machine's init keeps its unit pid files (inside the machine's own /run). */
export const UNIT_DIR = "/run/standort-twin/units";
/** The stand-in's log of every `systemctl` call, inside the machine. */
export const SYSTEMCTL_LOG = "/run/standort-twin/systemctl.log";

/**
 * `/usr/bin/systemctl` inside a twin machine. Records every call; answers
 * `is-active` from this init's pid files; `start|restart|stop wg-quick@<if>`
 * brings the partner tunnel's stand-in link up (adding the routes to the
 * file's AllowedIPs, as wg-quick's Table=auto does) or down; where no
 * stand-in link exists (a pair twin), a real WireGuard interface
 * (wireguard-go, `wg setconf` of the rendered file) comes up or is deleted.
 */
export const systemctlStandin = (requests: string) => `#!/bin/sh
# standort twin: systemctl stand-in (no systemd runs in a twin machine).
mkdir -p ${UNIT_DIR}
echo "$(date +%s.%N) systemctl $*" >> ${SYSTEMCTL_LOG}
quiet=0
verb=
units=
for a in "$@"; do
	case "$a" in
	-q | --quiet) quiet=1 ;;
	--now | --no-block | --no-pager | --force) ;;
	-*) echo "systemctl (twin): option $a is not implemented" >&2; exit 1 ;;
	*) if [ -z "$verb" ]; then verb=$a; else units="$units $a"; fi ;;
	esac
done
running() { [ -f ${UNIT_DIR}/"$1".pid ] && kill -0 "$(cat ${UNIT_DIR}/"$1".pid)" 2>/dev/null; }
tunnel() {
	conf=/etc/wireguard/$2.conf
	[ -r "$conf" ] || { echo "wg-quick@$2: $conf does not exist" >&2; return 1; }
	if ! ip link show "$2" >/dev/null 2>&1; then
		# No stand-in link: the peer's end is real (a pair twin). WireGuard in userspace, the rendered file
		# given to wg setconf unchanged (it holds no wg-quick keys), then what wg-quick does: link up, routes.
		[ "$1" = up ] || return 0
		wireguard-go "$2" >/dev/null 2>&1 || { echo "wg-quick@$2: wireguard-go could not create $2" >&2; return 1; }
		wg setconf "$2" "$conf" || { ip link del "$2"; return 1; }
	fi
	if [ "$1" = up ]; then
		ip link set "$2" up || return 1
		for p in $(sed -n 's/^AllowedIPs *= *//p' "$conf" | tr ',' ' '); do ip route replace "$p" dev "$2" || return 1; done
	elif [ -e /sys/class/net/"$2"/tun_flags ]; then
		# wg-quick down deletes the interface; wireguard-go exits with it.
		ip link del "$2"
	else
		ip link set "$2" down
	fi
}
case "$verb" in
is-active)
	rc=0
	for u in $units; do
		u=\${u%.service}
		if running "$u"; then [ $quiet = 1 ] || echo active; else [ $quiet = 1 ] || echo inactive; rc=3; fi
	done
	exit $rc
	;;
start | restart | stop)
	for u in $units; do
		case "$u" in
		wg-quick@*) if [ "$verb" = stop ]; then tunnel down "\${u#wg-quick@}"; else tunnel up "\${u#wg-quick@}"; fi || exit 1 ;;
		# The jobs' units: the twin runs them itself, from their files (recorded above, nothing to do here).
		standort-*) ;;
		*) echo "systemctl (twin): $verb $u is not implemented (the twin's init owns its units)" >&2; exit 5 ;;
		esac
	done
	;;
poweroff)
	# The twin powers the machine off (it watches ${requests}); a dying machine runs nothing more.
	echo "$(date +%s%3N)" > ${requests}/poweroff-"$(cat /etc/hostname)"
	sleep 30
	exit 0
	;;
*)
	echo "systemctl (twin): $verb is not implemented" >&2
	exit 1
	;;
esac
`;

/** One unit the init starts. */
export interface Unit {
  readonly name: string;
  /** Commands run first, inside the machine (`RuntimeDirectory=`, tmpfiles). */
  readonly prepare?: ReadonlyArray<string>;
  readonly argv: ReadonlyArray<string>;
  /** A line on stdout that says the unit is ready (stand-ins print `ready`). */
  readonly readyLine?: string;
}

/** A started unit. */
export interface Started {
  readonly unit: Unit;
  readonly process: ChildProcess;
}

/**
 * Starts a unit in a machine: runs its preparation, then the program through
 * a shell that records its pid (exec keeps the pid), and waits for its ready
 * line when it has one. Rejects when the unit exits before it is ready.
 */
export async function startUnit(machine: Machine, unit: Unit, timeoutMs = 20_000): Promise<Started> {
  const quote = (a: string) => `'${a.replace(/'/g, `'"'"'`)}'`;
  const script = [
    `mkdir -p ${UNIT_DIR}`,
    ...(unit.prepare ?? []),
    `echo $$ > ${join(UNIT_DIR, `${unit.name}.pid`)}`,
    `exec ${unit.argv.map(quote).join(" ")}`,
  ].join(" && ");
  const process = machine.spawn(["sh", "-c", script], unit.name, { stdout: unit.readyLine ? "pipe" : "log" });
  if (unit.readyLine) {
    const line = unit.readyLine;
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      const timer = setTimeout(
        () => reject(new Error(`${machine.name}: ${unit.name} not ready after ${timeoutMs} ms\n${machine.tail(unit.name)}`)),
        timeoutMs,
      );
      process.stdout?.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8");
        if (buffer.split("\n").includes(line)) {
          clearTimeout(timer);
          resolve();
        }
      });
      process.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${machine.name}: ${unit.name} exited (${String(code)}) before it was ready\n${machine.tail(unit.name)}`));
      });
    });
    // Keep reading, or a chatty unit blocks on a full pipe.
    process.stdout?.resume();
  }
  return { unit, process };
}

/** The Debian-style units of the daemons the rendered files configure. */
export const UNITS = {
  syslog: (): Unit => ({
    name: "syslog",
    prepare: ["mkdir -p /run/systemd/journal"],
    argv: ["socat", "-u", "UNIX-RECV:/run/systemd/journal/dev-log,mode=666", "STDOUT"],
  }),
  ssh: (config: string): Unit => ({
    name: "ssh",
    prepare: ["mkdir -p -m 0755 /run/sshd"],
    argv: ["/usr/sbin/sshd", "-D", "-e", "-f", config],
  }),
  haproxy: (): Unit => ({
    name: "haproxy",
    // /usr/lib/tmpfiles.d/haproxy.conf: d /run/haproxy 2775 haproxy haproxy
    prepare: ["install -d -m 2775 -o haproxy -g haproxy /run/haproxy"],
    argv: ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg", "-p", "/run/haproxy.pid"],
  }),
  /** PowerDNS as pdns.service starts it (`--guardian=no --daemon=no --write-pid=no`), its control socket in the machine's /run. */
  pdns: (): Unit => ({
    name: "pdns",
    prepare: ["install -d -m 0755 /run/pdns"],
    argv: [
      "/usr/sbin/pdns_server",
      "--guardian=no",
      "--daemon=no",
      "--disable-syslog",
      "--write-pid=no",
      "--socket-dir=/run/pdns",
      "--loglevel=6",
    ],
  }),
  /**
   * node exporter as Debian's unit starts it, its textfile folder the machine's own; without the systemd
   * collector (no systemd runs in a twin machine, LAB-NOTES).
   */
  nodeExporter: (): Unit => ({
    name: "prometheus-node-exporter",
    argv: [
      "/usr/bin/prometheus-node-exporter",
      "--no-collector.systemd",
      "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
      "--web.listen-address=:9100",
    ],
  }),
  /** Prometheus as Debian's unit starts it, its data in the machine's own /run (a twin keeps nothing). */
  prometheus: (): Unit => ({
    name: "prometheus",
    prepare: ["install -d -m 0755 /run/prometheus"],
    argv: [
      "/usr/bin/prometheus",
      "--config.file=/etc/prometheus/prometheus.yml",
      "--storage.tsdb.path=/run/prometheus",
      "--web.listen-address=:9090",
    ],
  }),
  /** Alertmanager as Debian's unit starts it (`$ARGS` from its defaults file: the cluster flags), state in /run. */
  alertmanager: (args: ReadonlyArray<string>): Unit => ({
    name: "prometheus-alertmanager",
    prepare: ["install -d -m 0755 /run/alertmanager"],
    argv: [
      "/usr/bin/prometheus-alertmanager",
      "--config.file=/etc/prometheus/alertmanager.yml",
      "--storage.path=/run/alertmanager",
      "--web.listen-address=:9093",
      ...args,
    ],
  }),
  bird: (): Unit => ({
    name: "bird",
    prepare: ["install -d -m 0775 -o bird -g bird /run/bird"],
    argv: ["/usr/sbin/bird", "-f", "-c", "/etc/bird/bird.conf", "-s", "/run/bird/bird.ctl"],
  }),
  /** conntrackd as Debian's package starts it (its own unit file, read from the system). */
  conntrackd: (): Unit => UNITS.fromUnitFile("conntrackd", readFileSync("/lib/systemd/system/conntrackd.service", "utf8")),
  keepalived: (): Unit => ({ name: "keepalived", argv: ["/usr/sbin/keepalived", "--dont-fork", "--log-console", "--log-detail"] }),
  /**
   * A rendered systemd unit (the fence's sshd): its `ExecStart=` as the
   * command, its `RuntimeDirectory=` made first. Refuses what it cannot read.
   */
  fromUnitFile: (name: string, content: string): Unit => {
    const value = (key: string) =>
      content
        .split("\n")
        .find((l) => l.startsWith(`${key}=`))
        ?.slice(key.length + 1);
    const exec = value("ExecStart");
    if (!exec || /["'\\$%]/.test(exec)) throw new Error(`${name}.service: ExecStart=${exec ?? ""} is not a plain command the twin can run`);
    const runtime = value("RuntimeDirectory");
    const mode = value("RuntimeDirectoryMode") ?? "0755";
    return {
      name,
      prepare: runtime ? runtime.split(/\s+/).map((d) => `mkdir -p -m ${mode} /run/${d}`) : [],
      argv: exec.split(/\s+/),
    };
  },
};
