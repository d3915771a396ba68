/**
 * The twin's storage pair: the real NFS server (nfs-ganesha from the rendered
 * `/etc/ganesha/ganesha.conf`, started and stopped by the rendered failover
 * script's role hooks through the twin's `systemctl`) on a stand-in for DRBD.
 *
 * DRBD cannot run here: this machine's kernel has no module support at all
 * (no `/proc/modules`, no `/lib/modules`, no `modprobe`), no `/proc/drbd` and
 * no `drbd` in `/proc/devices`. So each storage machine gets on its PATH
 * (`/usr/local/sbin`, before `/usr/sbin` and `/usr/bin`):
 * - `drbdadm`: records every call (`<state>/calls.log`) and keeps each
 *   member's role; refuses what DRBD refuses: promoting while the peer is
 *   primary and connected (exit 11), going secondary while the device is
 *   mounted (exit 11), `connect --discard-my-data` on a primary (exit 10);
 *   promoting without a connected peer runs the resource's `fence-peer`
 *   handler first, as `fencing resource-and-stonith` makes DRBD do, and
 *   refuses unless it exits 7. "Connected" is what the network says: the
 *   peer's DRBD port (`DRBD_PORT`, the stand-in listener the zone policy's
 *   `<hb>-drbd` rule gives it) answers on its heartbeat address.
 * - `mount` / `umount` of `DRBD_DEVICE`: bind the site's one backing folder on
 *   `DATA_ROOT` (refused while not primary, as a secondary DRBD device refuses
 *   to open), and take it away; every other use goes to the real programs.
 * One backing folder per site is what protocol C guarantees: every
 * acknowledged write is on both disks, so whichever member is primary sees
 * the same data. What the stand-in cannot show: a split brain's diverging
 * disks, resynchronisation, or I/O frozen while the fence runs.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { GANESHA_CONF } from "../../lib/render/ganesha";
import { DATA_ROOT, DRBD_DEVICE, DRBD_RESOURCE, DRBD_RESOURCE_FILE, NFS_SERVER_UNIT } from "../../lib/render/storage";
import { currentHolder } from "./holders";
import { settle } from "./reachability";
import { UNIT_DIR } from "./init";
import type { SiteTwin } from "./site";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every 250 ms until it is true or `boundMs` passed; true when it became true. */
async function until(check: () => Promise<boolean>, boundMs: number): Promise<boolean> {
  const from = performance.now();
  while (performance.now() - from < boundMs) {
    if (await check()) return true;
    await sleep(250);
  }
  return false;
}

/** The twin's DRBD stand-in folders of a site: the one backing folder and the members' state. */
export function drbdFolders(twinDir: string, site: string): { backing: string; state: string } {
  return { backing: join(twinDir, "drbd", site, "data"), state: join(twinDir, "drbd", site, "state") };
}

/** `drbdadm` inside a twin storage machine (see the module comment). */
export function drbdadmStandin(state: string): string {
  return `#!/bin/bash
# standort twin: drbdadm stand-in (no DRBD kernel module on this machine). Records every call; keeps roles in
# ${state}; refuses what DRBD refuses.
STATE=${state}
RES_FILE=${DRBD_RESOURCE_FILE}
SELF=$(cat /etc/hostname)
echo "$(date +%s.%N) $SELF drbdadm $*" >> "$STATE/calls.log"
PEER=$(awk '$1 == "on" { print $2 }' "$RES_FILE" | grep -vx "$SELF" | head -n 1)
PEER_ADDR=$(awk -v p="$PEER" '$1 == "on" { f = ($2 == p) } f && $1 == "address" { sub(";", "", $2); print $2; exit }' "$RES_FILE")
HANDLER=$(sed -n 's/^[[:space:]]*fence-peer "\\(.*\\)";/\\1/p' "$RES_FILE")
role() { cat "$STATE/$1.role" 2>/dev/null || echo Secondary; }
connected() {
	[ -n "$PEER" ] && [ ! -e "$STATE/$SELF.standalone" ] && [ ! -e "$STATE/$PEER.standalone" ] &&
		timeout 0.5 bash -c "exec 3<>/dev/tcp/\${PEER_ADDR%:*}/\${PEER_ADDR##*:}" 2>/dev/null
}
say() { echo "$*" >> "$STATE/calls.log"; }
args=()
discard=no
force=no
for a in "$@"; do
	case "$a" in
	--discard-my-data) discard=yes ;;
	--force) force=yes ;;
	-*) ;;
	*) args+=("$a") ;;
	esac
done
verb=\${args[0]:-}
res=\${args[1]:-}
if [ -n "$res" ] && [ "\${res%%:*}" != "${DRBD_RESOURCE}" ] && [ "$res" != all ]; then
	echo "'$res' not defined in your config (for this host)." >&2
	exit 10
fi
case "$verb" in
role) role "$SELF" ;;
cstate) if connected; then echo Connected; elif [ -e "$STATE/$SELF.standalone" ]; then echo StandAlone; else echo Connecting; fi ;;
dstate) if connected; then echo UpToDate/UpToDate; else echo UpToDate/DUnknown; fi ;;
status)
	echo "${DRBD_RESOURCE} role:$(role "$SELF")"
	echo "  disk:UpToDate"
	if connected; then echo "  $PEER role:$(role "$PEER")"; echo "    peer-disk:UpToDate"; else echo "  $PEER connection:$("$0" cstate ${DRBD_RESOURCE})"; fi
	;;
get-gi) echo "twin-stand-in:0000000000000000:0000000000000000:0000000000000000:1:1:1:1:0:0:0" ;;
primary)
	[ "$(role "$SELF")" = Primary ] && exit 0
	if connected; then linked=yes; else linked=no; fi
	if [ "$(role "$PEER")" = Primary ] && [ "$linked" = yes ]; then
		echo "${DRBD_RESOURCE}: State change failed: (-1) Multiple primaries not allowed by config" >&2
		say "refused: primary while $PEER is primary and connected"
		exit 11
	fi
	if [ -n "$PEER" ] && [ "$force" = no ] && [ "$linked" = no ]; then
		# fencing resource-and-stonith: the peer's disk is unknown, so DRBD asks the fence-peer handler first.
		sh -c "$HANDLER"
		rc=$?
		say "fence-peer handler ($HANDLER) exited $rc"
		if [ "$rc" -ne 7 ]; then
			echo "${DRBD_RESOURCE}: State change failed: (-7) Refusing to be Primary while peer is not outdated" >&2
			exit 11
		fi
	fi
	echo Primary > "$STATE/$SELF.role"
	;;
secondary)
	if [ -e "$STATE/$SELF.mounted" ]; then
		echo "${DRBD_RESOURCE}: State change failed: (-12) Device is held open by someone" >&2
		say "refused: secondary while mounted"
		exit 11
	fi
	echo Secondary > "$STATE/$SELF.role"
	;;
connect)
	if [ "$discard" = yes ] && [ "$(role "$SELF")" = Primary ]; then
		echo "${DRBD_RESOURCE}: Failure: (123) --discard-my-data not allowed when primary." >&2
		say "refused: connect --discard-my-data on a primary"
		exit 10
	fi
	rm -f "$STATE/$SELF.standalone"
	;;
disconnect) touch "$STATE/$SELF.standalone" ;;
up | down | adjust | create-md | dump-md | attach | detach) ;;
*)
	echo "drbdadm (twin): $verb is not implemented" >&2
	exit 20
	;;
esac
exit 0
`;
}

/** `mount` inside a twin storage machine: `DRBD_DEVICE` on `DATA_ROOT` binds the backing folder; the rest is the real mount. */
export function mountStandin(state: string, backing: string): string {
  return `#!/bin/sh
# standort twin: mount of the DRBD device stands for the site's one backing folder (protocol C: both disks alike).
if [ "$#" -eq 2 ] && [ "$1" = ${DRBD_DEVICE} ]; then
	SELF=$(cat /etc/hostname)
	echo "$(date +%s.%N) $SELF mount $*" >> ${state}/calls.log
	if [ "$(cat ${state}/"$SELF".role 2>/dev/null)" != Primary ]; then
		echo "mount: $2: wrong medium type." >&2
		exit 32
	fi
	if [ -e ${state}/"$SELF".mounted ]; then
		echo "mount: $2: ${DRBD_DEVICE} already mounted on $2." >&2
		exit 32
	fi
	/usr/bin/mount --bind ${backing} "$2" || exit 32
	echo "$2" > ${state}/"$SELF".mounted
	exit 0
fi
exec /usr/bin/mount "$@"
`;
}

/** `umount` inside a twin storage machine: `DRBD_DEVICE` (or `DATA_ROOT` while it is mounted) takes the backing folder away. */
export function umountStandin(state: string): string {
  return `#!/bin/sh
SELF=$(cat /etc/hostname)
if [ "$#" -eq 1 ] && { [ "$1" = ${DRBD_DEVICE} ] || { [ "$1" = ${DATA_ROOT} ] && [ -e ${state}/"$SELF".mounted ]; }; }; then
	echo "$(date +%s.%N) $SELF umount $*" >> ${state}/calls.log
	if [ ! -e ${state}/"$SELF".mounted ]; then
		echo "umount: $1: not mounted." >&2
		exit 32
	fi
	/usr/bin/umount "$(cat ${state}/"$SELF".mounted)" || exit 32
	rm -f ${state}/"$SELF".mounted
	exit 0
fi
exec /usr/bin/umount "$@"
`;
}

/**
 * `systemctl` of a twin storage machine: starts, stops and restarts the real
 * nfs-ganesha as Debian's unit does (`ganesha.nfsd -f /etc/ganesha/ganesha.conf`,
 * forking), with its pid in the machine's own /run and its log in the twin's
 * folder; every other call goes to the twin's common stand-in (`common`),
 * which answers `is-active` from the pid file this one writes.
 */
export function storageSystemctl(common: string, logDir: string): string {
  const pid = "/run/ganesha/ganesha.pid";
  return `#!/bin/sh
# standort twin: systemctl of a storage machine: ${NFS_SERVER_UNIT} for real, the rest to the common stand-in.
verb=
unit=
for a in "$@"; do case "$a" in -*) ;; *) if [ -z "$verb" ]; then verb=$a; elif [ -z "$unit" ]; then unit=$a; fi ;; esac; done
[ "\${unit%.service}" = ${NFS_SERVER_UNIT} ] || exec ${common} "$@"
echo "$(date +%s.%N) systemctl $*" >> /run/standort-twin/systemctl.log
running() { [ -f ${pid} ] && kill -0 "$(cat ${pid})" 2>/dev/null; }
stop() {
	running || { rm -f ${UNIT_DIR}/${NFS_SERVER_UNIT}.pid; return 0; }
	p=$(cat ${pid})
	kill "$p"
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$p" 2>/dev/null
	rm -f ${pid} ${UNIT_DIR}/${NFS_SERVER_UNIT}.pid
}
start() {
	running && return 0
	mkdir -p /run/ganesha ${UNIT_DIR}
	rm -f ${pid}
	ganesha.nfsd -f ${GANESHA_CONF} -L ${logDir}/"$(cat /etc/hostname)".log -p ${pid} -N NIV_EVENT || return 1
	i=0
	# Forking, as Debian's unit (Type=forking): ready once it listens.
	until ss -Hltn 'sport = :2049' | grep -q . ; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "${NFS_SERVER_UNIT}: not listening after 10 s" >&2; return 1; }
		sleep 0.1
	done
	cp ${pid} ${UNIT_DIR}/${NFS_SERVER_UNIT}.pid
}
case "$verb" in
start) start ;;
stop) stop ;;
restart) stop && start ;;
try-restart) if running; then stop && start; fi ;;
*) exec ${common} "$@" ;;
esac
`;
}

/**
 * Prepares a site's storage for the twin: the backing folder with every
 * exported tree in it (what a deployment creates on the formatted volume;
 * ganesha refuses an export whose path is missing), the state folder, and
 * each storage member back to Secondary and unmounted (what a boot does).
 */
export function prepareStorage(twinDir: string, site: string, ganeshaConf: string | undefined): void {
  const { backing, state } = drbdFolders(twinDir, site);
  mkdirSync(state, { recursive: true });
  mkdirSync(backing, { recursive: true });
  for (const path of exportPaths(ganeshaConf ?? "")) mkdirSync(join(backing, path.slice(DATA_ROOT.length)), { recursive: true });
}

/** A storage member boots: DRBD comes up Secondary and nothing is mounted (a crash took its mount namespace). */
export function resetMember(twinDir: string, site: string, host: string): void {
  const { state } = drbdFolders(twinDir, site);
  mkdirSync(state, { recursive: true });
  writeFileSync(join(state, `${host}.role`), "Secondary\n");
  rmSync(join(state, `${host}.mounted`), { force: true });
  rmSync(join(state, `${host}.standalone`), { force: true });
}

/** The `Path`s of a ganesha.conf's exports. */
export function exportPaths(conf: string): string[] {
  return [...conf.matchAll(/^\s*Path\s*=\s*"([^"]+)";/gm)].map((m) => m[1]);
}

/** Every call the site's storage stand-ins recorded (`drbdadm`, `mount`, `umount`), in order. */
export function storageCalls(twin: SiteTwin): string[] {
  try {
    return readFileSync(join(drbdFolders(twin.dir, twin.model.name).state, "calls.log"), "utf8")
      .split("\n")
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** What `storageTakeover` measured. */
export interface StorageTakeover {
  /** The exported tree written to. */
  readonly tree: string;
  /** The file's name in it. */
  readonly file: string;
  /** How it was written: the client machine, its address and the URL. */
  readonly writtenVia: string;
  /** The active storage member that was crashed. */
  readonly crashed: string;
  /** The member that serves afterwards (undefined: none took over within the bound). */
  readonly tookOver: string | undefined;
  /** True when the file read back through the storage VIP after the takeover holds what was written. */
  readonly readBack: boolean;
  /** Seconds from the crash until the file read back (null: not within the bound). */
  readonly seconds: number | null;
  /**
   * Seconds from the crash until the export answered a listing again (null: never): the takeover itself; the
   * rest of `seconds` is NFSv4's grace period, in which the new server refuses new opens (libnfs never reclaims).
   */
  readonly exportSeconds: number | null;
}

/** How long the scenario waits for the file after the crash (ms): the NFSv4 grace period fits in it. */
const READ_BACK_BOUND_MS = 90_000;

/**
 * Writes a file through the export (libnfs `nfs-cp`, NFSv4, from a
 * virtualization host's namespace to `nfs://<storage VIP><tree>/…`), crashes
 * the active storage member, and reads the file back (`nfs-cat`, every 250 ms)
 * until it matches or `READ_BACK_BOUND_MS` passed. The crashed member is
 * booted again afterwards unless `restore` is false.
 * @throws Error when the site has no export, the write fails, or no member serves
 */
export async function storageTakeover(twin: SiteTwin, options: { restore?: boolean } = {}): Promise<StorageTakeover> {
  const pair = twin.model.pairs.find((p) => p.role === "storage");
  if (!pair) throw new Error(`${twin.model.name} has no storage pair`);
  const vip = pair.vips.find((v) => v.segment === "data")!.address;
  const pending = await settle(twin);
  if (pending.length > 0) throw new Error(`${twin.model.name}: the pairs did not settle: ${pending.join("; ")}`);
  const active = await currentHolder(twin, pair);
  if (!active) throw new Error(`${twin.model.name}: no storage member holds ${vip}`);
  const tree = exportPaths(twin.file(active, GANESHA_CONF) ?? "")[0];
  if (!tree) throw new Error(`${twin.model.name}: ${active} exports no tree`);
  const virt = twin.model.hosts.find((h) => h.role === "virtualization" && twin.isUp(h.name));
  if (!virt) throw new Error(`${twin.model.name}: no virtualization host is up`);
  const source = virt.interfaces.find((i) => i.segment === "app")!.address;
  const file = `twin-takeover-${Date.now()}.txt`;
  // Below 4 KB: libnfs's NFSv4 writes of more fail (LAB-NOTES).
  const content = `written through ${vip} before ${active} crashed\n`;
  const url = `nfs://${vip}${tree}/${file}?version=4`;
  const client = twin.machine(virt.name);
  const local = `/run/${file}`;
  await client.run(["sh", "-c", `printf '%s' "$1" > ${local}`, "write", content]);
  // The active member serves once its failover script has promoted, mounted and started the server.
  const ready = await until(
    async () => (await client.exec(["nfs-ls", `nfs://${vip}${tree}?version=4`], { timeoutMs: 5_000 })).code === 0,
    30_000,
  );
  if (!ready) throw new Error(`${virt.name}: nfs://${vip}${tree} did not answer within 30 s of the pairs settling`);
  const written = await client.exec(["nfs-cp", local, url], { timeoutMs: 15_000 });
  if (written.code !== 0) throw new Error(`${virt.name}: nfs-cp to ${url} failed: ${(written.stderr || written.stdout).trim()}`);
  await twin.crash(active, "storage takeover scenario");
  const t0 = performance.now();
  let readBack = false;
  let seconds: number | null = null;
  let exportSeconds: number | null = null;
  const since = () => Math.round((performance.now() - t0) / 10) / 100;
  while (performance.now() - t0 < READ_BACK_BOUND_MS) {
    if (exportSeconds === null && (await client.exec(["nfs-ls", `nfs://${vip}${tree}?version=4`], { timeoutMs: 5_000 })).code === 0)
      exportSeconds = since();
    const r = await client.exec(["nfs-cat", url], { timeoutMs: 5_000 });
    if (r.code === 0 && r.stdout === content) {
      readBack = true;
      seconds = since();
      break;
    }
    await sleep(250);
  }
  const tookOver = await currentHolder(twin, pair);
  if (options.restore !== false) await twin.restore(active);
  return {
    tree,
    file,
    writtenVia: `nfs-cp on ${virt.name} (${source}) to ${url}`,
    crashed: active,
    tookOver,
    readBack,
    seconds,
    exportSeconds,
  };
}
