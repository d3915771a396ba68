/**
 * The storage pair's one consistent copy: the data volume replicated
 * synchronously with DRBD 9 (drbd.conf(5), drbdadm(8), drbd-utils 9.22),
 * promoted, mounted and exported only on the active member after fencing
 * (the failover script's role hooks, `lib/render/keepalived.ts`), formatted
 * once on first boot, and a split brain repaired by naming the survivor.
 *
 * Files of each storage host (all depend on the site model only; the NFS
 * exports follow the footprint and live in `lib/footprint/nfs-exports.ts`):
 * - `DRBD_RESOURCE_FILE`: the resource, checked by `drbdadm -c <file> dump all`
 * - `DATA_VOLUME_SCRIPT` + `DATA_VOLUME_UNIT`: first boot (metadata once, up, format a fresh pair once)
 * - `SPLIT_BRAIN_SCRIPT`: `status` and `repair --survivor <host>`
 * - on Hetzner Cloud `DATA_VOLUME_UDEV_RULE`: a stable name for the attached volume
 * Pure; never imports `@pulumi/pulumi`.
 */
import type { PairModel, SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { checkHost, pairOf } from "./interfaces";
import { DRBD_PORT } from "./policy";
import type { RenderOptions } from "./types";
import { adapterOf } from "../providers/registry";

/** The DRBD resource of the storage pair (drbd.conf(5) `resource <name>`): one per site, on the data volume. */
export const DRBD_RESOURCE = "standort-data";
/** Where the resource is installed: Debian's `/etc/drbd.conf` includes `drbd.d/*.res`. */
export const DRBD_RESOURCE_FILE = `/etc/drbd.d/${DRBD_RESOURCE}.res`;
/** The replicated block device (minor 0), what the active member mounts. */
export const DRBD_DEVICE = "/dev/drbd0";
/** Where the active member mounts the replicated device: the trees (`/srv/<service>/<tree>`) live below it. */
export const DATA_ROOT = "/srv";
/** The NFS server's systemd unit (Debian's `nfs-ganesha` package). */
export const NFS_SERVER_UNIT = "nfs-ganesha";
/** The first-boot program and its unit (oneshot, before keepalived). */
export const DATA_VOLUME_SCRIPT = "/usr/local/sbin/standort-data-volume";
export const DATA_VOLUME_UNIT = "standort-data-volume.service";
export const DATA_VOLUME_UNIT_FILE = `/etc/systemd/system/${DATA_VOLUME_UNIT}`;
/** The operators' split-brain program (`status`, `repair --survivor <host>`). */
export const SPLIT_BRAIN_SCRIPT = "/usr/local/sbin/standort-split-brain";
/** Where a provider's udev rule names the data disk (`DataDisk.udevRule` of its adapter). */
export const DATA_VOLUME_UDEV_RULE = "/etc/udev/rules.d/61-standort-data-volume.rules";
/**
 * DRBD's current UUID of metadata that never held data (`drbdadm get-gi`,
 * UUID_JUST_CREATED in drbd_int.h): a side with it has never been primary.
 */
export const DRBD_JUST_CREATED_UUID = "0000000000000004";
/**
 * Seconds between DRBD's keep-alive pings of an idle connection (drbd.conf(5)
 * `ping-int`, default 10): with the 0.5 s `ping-timeout` the most a member
 * taking over waits until DRBD lets it promote.
 */
export const DRBD_PING_SECONDS = 2;
/** How long the first member waits for its peer before it gives up formatting (seconds; the unit can be started again). */
export const FORMAT_PEER_WAIT_SECONDS = 600;
/**
 * How long every boot waits for the peer to connect before keepalived starts
 * (seconds; DRBD's own init waits the same way, `wfc-timeout`): a member
 * promoted while its peer is still booting would fence that peer (fencing
 * resource-and-stonith calls the fence for a peer it cannot see).
 */
export const BOOT_PEER_WAIT_SECONDS = 60;
/** Filesystem label of the data volume (mkfs.ext4 -L, at most 16 bytes). */
export const DATA_FILESYSTEM_LABEL = "standort-data";

/** The block device under DRBD on a storage host: the provider adapter's `dataDisk`. */
export function dataDisk(model: SiteModel): string {
  return adapterOf(model).dataDisk.device(model);
}

/** The storage pair of the host, or a problem. */
function storagePair(model: SiteModel, hostName: string, options: RenderOptions): PairModel {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  const pair = pairOf(model, hostName);
  if (host && host.role !== "storage")
    problems.add("hostName", `${hostName} is a ${host.role} host: only storage hosts replicate the data volume`);
  else if (host && pair?.role !== "storage") problems.add("hostName", `${hostName} belongs to no storage pair`);
  for (const member of pair?.members ?? []) {
    if (!pair?.heartbeat[member])
      problems.add(`pairs.${pair?.name}.heartbeat.${member}`, `${member} has no heartbeat address: DRBD replicates on it`);
  }
  problems.throwIfAny();
  return pair!;
}

/** The members that hold the data: both, or only the active member of a dissolved pair. */
function dataMembers(pair: PairModel): string[] {
  return pair.dissolved ? [pair.active] : [...pair.members];
}

/**
 * Renders `/etc/drbd.d/standort-data.res` (drbd.conf(5), DRBD 9): protocol C
 * (a write is acknowledged only once it is on both disks), each member with
 * its node id, `DRBD_DEVICE`, the provider's data disk (`dataDisk`), internal
 * metadata and its heartbeat address on `DRBD_PORT`; split-brain policies;
 * `fencing resource-and-stonith` with the failover script's fence as the
 * `fence-peer` handler; no auto-promotion (only the failover script promotes).
 * Throws `RenderInputError` for a host that is not a storage pair member.
 */
export function renderDrbdResource(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const pair = storagePair(model, hostName, options);
  const disk = dataDisk(model);
  const lines = [
    `# standort: the data volume of the storage pair of ${model.name}, replicated by DRBD. Rendered from ${model.file}; do not edit.`,
    `resource ${DRBD_RESOURCE} {`,
    "\tnet {",
    "\t\t# Synchronous: a write is acknowledged once it is on both disks, so a takeover loses no acknowledged write.",
    "\t\tprotocol C;",
    "\t\t# After a split brain: a side that wrote nothing takes the other's data; a secondary's changes are discarded;",
    "\t\t# two primaries disconnect and wait for an operator (standort-split-brain repair --survivor <host>).",
    "\t\tafter-sb-0pri discard-zero-changes;",
    "\t\tafter-sb-1pri discard-secondary;",
    "\t\tafter-sb-2pri disconnect;",
    "\t\t# A primary that loses its peer freezes I/O until the peer is fenced (powered off): an outdated peer can",
    "\t\t# never be promoted while this side keeps writing.",
    "\t\tfencing resource-and-stonith;",
    `\t\t# A dead peer is noticed within ${DRBD_PING_SECONDS} s and DRBD's 0.5 s ping timeout (default interval 10 s): the`,
    "\t\t# member taking over (after its fence) may promote only then, and retries that long (DRBD_PROMOTE_TRIES).",
    `\t\tping-int ${DRBD_PING_SECONDS};`,
    "\t}",
    "\toptions {",
    "\t\t# Only the failover script promotes (after fencing); opening the device never does.",
    "\t\tauto-promote no;",
    "\t}",
    "\thandlers {",
    "\t\t# The pair's own fence (the peer's fence sshd over mgmt, then the provider's power-off); exit 7 = fenced.",
    `\t\tfence-peer "/bin/sh /etc/keepalived/standort-failover.sh drbd-fence-peer";`,
    "\t}",
  ];
  dataMembers(pair).forEach((member) => {
    const index = pair.members.indexOf(member);
    lines.push(
      // The heartbeat segment: a link of the pair's own that no other host is on (the packet filter admits only
      // the peer, rule <hb>-drbd), so replication does not compete with the NFS clients on data. A cut heartbeat
      // moves nothing (VRRP also runs over mgmt) and the primary fences its peer before it writes on alone.
      `\ton ${member} {`,
      `\t\tnode-id ${index};`,
      `\t\tdevice ${DRBD_DEVICE};`,
      `\t\tdisk ${disk};`,
      `\t\tmeta-disk internal;`,
      `\t\taddress ${pair.heartbeat[member]}:${DRBD_PORT};`,
      "\t}",
    );
  });
  lines.push("}", "");
  return lines.join("\n");
}

/**
 * Renders the first-boot program (`DATA_VOLUME_SCRIPT`, POSIX sh): creates
 * DRBD metadata when the disk has none (refusing a disk that holds any
 * filesystem or signature, `blkid`), brings the resource up, waits up to
 * `BOOT_PEER_WAIT_SECONDS` for the peer (every boot), and on the pair's
 * first member only, when both sides are fresh (connected, both Inconsistent,
 * this side's current UUID `DRBD_JUST_CREATED_UUID`), forces primary once,
 * runs `mkfs.ext4` on `DRBD_DEVICE` unless `blkid` finds a filesystem there,
 * and goes secondary. Idempotent: a second run finds metadata, an up resource
 * and a generation, and changes nothing. Exit 0 done or nothing to do, 1 refused.
 */
export function renderDataVolumeScript(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const pair = storagePair(model, hostName, options);
  const first = dataMembers(pair)[0];
  return [
    "#!/bin/sh",
    `# standort: first boot of the data volume on ${hostName} (storage pair of ${model.name}). Rendered from ${model.file}; do not edit.`,
    "# Creates DRBD metadata once, brings the resource up, and formats a fresh pair once, on its first member.",
    "# Never formats a device that holds a filesystem; never creates metadata over one.",
    "set -u",
    "",
    `RES=${DRBD_RESOURCE}`,
    "# Overridable only so that tests can run the script against a stand-in disk.",
    `DISK=\${STANDORT_DATA_DISK:-${dataDisk(model)}}`,
    `DEVICE=${DRBD_DEVICE}`,
    `SELF=${hostName}`,
    `FIRST=${first}`,
    `JUST_CREATED=${DRBD_JUST_CREATED_UUID}`,
    `WAIT_SECONDS=${FORMAT_PEER_WAIT_SECONDS}`,
    `BOOT_WAIT_SECONDS=${BOOT_PEER_WAIT_SECONDS}`,
    "",
    'log() { logger -t standort-data-volume -p daemon.notice -- "$*"; echo "standort-data-volume: $*" >&2; }',
    'refuse() { log "refused: $*"; exit 1; }',
    "# What blkid finds on a device (its TYPE or PTTYPE), empty when it is blank.",
    "signature() { blkid -p -o export \"$1\" 2>/dev/null | sed -n 's/^\\(PT\\)\\{0,1\\}TYPE=//p' | head -n 1; }",
    "",
    `mkdir -p ${DATA_ROOT}`,
    ...adapterOf(model).dataDisk.guard,
    '[ -b "$DISK" ] || refuse "$DISK is not a block device"',
    "",
    "# Up already (a second run, or Debian's drbd.service): nothing to create.",
    'if ! drbdadm status "$RES" >/dev/null 2>&1; then',
    '\tif ! drbdadm dump-md "$RES" >/dev/null 2>&1; then',
    "\t\t# No DRBD metadata: the disk must be blank, never a filesystem someone else made.",
    "\t\t# Low-level probe: a filesystem, RAID or LVM signature (TYPE) or a partition table (PTTYPE).",
    '\t\tfound=$(signature "$DISK")',
    '\t\t[ -z "$found" ] || refuse "$DISK holds $found: not creating DRBD metadata over it"',
    "\t\t# No prompt can be answered here: create-md stops instead of asking.",
    '\t\tdrbdadm create-md --max-peers=1 "$RES" </dev/null || refuse "drbdadm create-md $RES failed"',
    '\t\tlog "created DRBD metadata on $DISK"',
    "\tfi",
    '\tdrbdadm up "$RES" || refuse "drbdadm up $RES failed"',
    "fi",
    "",
    ...(pair.dissolved
      ? []
      : [
          "# Every boot: the peer gets a while to connect before keepalived may promote this side.",
          "waited=0",
          'while [ "$(drbdadm cstate "$RES" 2>/dev/null)" != Connected ] && [ "$waited" -lt "$BOOT_WAIT_SECONDS" ]; do',
          "\tsleep 1",
          "\twaited=$((waited + 1))",
          "done",
          "",
        ]),
    '[ "$SELF" = "$FIRST" ] || exit 0',
    "# This side's generation: anything but just-created means the pair has data (or had); never format then.",
    'gi=$(drbdadm get-gi "$RES" 2>/dev/null) || refuse "drbdadm get-gi $RES failed"',
    '[ "${gi%%:*}" = "$JUST_CREATED" ] || exit 0',
    "# Both sides fresh: connected, and both disks Inconsistent (neither ever held data).",
    "waited=0",
    'until [ "$(drbdadm cstate "$RES" 2>/dev/null)" = Connected ]; do',
    '\t[ "$waited" -lt "$WAIT_SECONDS" ] || refuse "the peer did not connect within ${WAIT_SECONDS}s: not formatting (start the unit again)"',
    "\tsleep 1",
    "\twaited=$((waited + 1))",
    "done",
    'states=$(drbdadm dstate "$RES" 2>/dev/null)',
    '[ "$states" = Inconsistent/Inconsistent ] || { log "disk states $states: the pair holds data; not formatting"; exit 0; }',
    'drbdadm primary --force "$RES" || refuse "drbdadm primary --force $RES failed"',
    'found=$(signature "$DEVICE")',
    'if [ -n "$found" ]; then',
    '\tdrbdadm secondary "$RES"',
    '\trefuse "$DEVICE holds $found: not formatting"',
    "fi",
    `mkfs.ext4 -q -L ${DATA_FILESYSTEM_LABEL} "$DEVICE" || { drbdadm secondary "$RES"; refuse "mkfs.ext4 $DEVICE failed"; }`,
    'drbdadm secondary "$RES" || refuse "drbdadm secondary $RES failed"',
    'log "formatted $DEVICE (ext4); the failover script mounts it on the active member"',
    "exit 0",
    "",
  ].join("\n");
}

/** Renders the first-boot unit: oneshot, before keepalived (whose failover script promotes and mounts). */
export function renderDataVolumeUnit(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  storagePair(model, hostName, options);
  return [
    `# standort: the data volume of ${hostName} (${model.name}). Rendered from ${model.file}; do not edit.`,
    "[Unit]",
    "Description=standort data volume: DRBD metadata once, resource up, a fresh pair formatted once",
    "After=network-online.target systemd-udev-settle.service local-fs.target",
    "Wants=network-online.target",
    "# keepalived's failover script promotes and mounts the device: it must be up first.",
    "Before=keepalived.service",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${DATA_VOLUME_SCRIPT}`,
    `# Every boot waits up to ${BOOT_PEER_WAIT_SECONDS} s for the peer; the first member up to ${FORMAT_PEER_WAIT_SECONDS} s more before a first format.`,
    `TimeoutStartSec=${BOOT_PEER_WAIT_SECONDS + FORMAT_PEER_WAIT_SECONDS + 60}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * Renders the operators' split-brain program (`SPLIT_BRAIN_SCRIPT`, POSIX sh):
 * - `status`: this side's role, connection, disk state, data generation
 *   (`drbdadm get-gi`) and changes made while apart (out-of-sync KiB), the
 *   peer's where it answers over SSH (`standort-split-brain generation`), and
 *   which side looks newest (the primary if only one is; else the one with
 *   more changes while apart);
 * - `repair --survivor <host>`: refuses without a survivor, an unknown host
 *   name, or a victim that still serves; on the victim `drbdadm disconnect`,
 *   `secondary`, `connect --discard-my-data`; on the survivor `drbdadm connect`.
 * Exit 0 done, 1 refused or failed, 2 usage.
 */
export function renderSplitBrainScript(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const pair = storagePair(model, hostName, options);
  const members = dataMembers(pair);
  const peer = members.find((m) => m !== hostName) ?? "";
  return [
    "#!/bin/sh",
    `# standort: repair a split brain of the storage pair of ${model.name}, on ${hostName}. Rendered from ${model.file}; do not edit.`,
    "#   standort-split-brain status                      each side's data generation, and which looks newest",
    "#   standort-split-brain repair --survivor <host>     keep <host>'s data; the other side discards its own",
    "# Run `repair` on both members, naming the same survivor (the victim first).",
    "set -u",
    "",
    `RES=${DRBD_RESOURCE}`,
    `SELF=${hostName}`,
    `PEER=${peer}`,
    `MEMBERS="${members.join(" ")}"`,
    `PEER_MGMT=${peer ? (pair.mgmt[peer] ?? "") : ""}`,
    "# Present on the member that serves (the failover script's flag).",
    "ACTIVE_FLAG=${STANDORT_RUN_DIR:-/run/standort}/storage-active",
    "",
    'log() { logger -t standort-split-brain -p daemon.notice -- "$*"; echo "standort-split-brain: $*" >&2; }',
    'usage() { echo "usage: standort-split-brain status | repair --survivor <host> (one of: $MEMBERS)" >&2; exit 2; }',
    "",
    "# This side's facts, one per line (key value): what `status` prints for each side.",
    "generation() {",
    '\techo "host $SELF"',
    '\techo "role $(drbdadm role "$RES" 2>/dev/null || echo unknown)"',
    '\techo "connection $(drbdadm cstate "$RES" 2>/dev/null || echo unknown)"',
    '\techo "disk $(drbdadm dstate "$RES" 2>/dev/null || echo unknown)"',
    '\techo "generation $(drbdadm get-gi "$RES" 2>/dev/null || echo unknown)"',
    "\t# KiB this side changed that the peer lacks (the bitmap): the larger, the more was written while apart.",
    "\toos=$(drbdsetup status \"$RES\" --statistics 2>/dev/null | sed -n 's/.*out-of-sync:\\([0-9]*\\).*/\\1/p' | head -n 1)",
    '\techo "out-of-sync-kib ${oos:-0}"',
    '\tif [ -e "$ACTIVE_FLAG" ]; then echo "serving yes"; else echo "serving no"; fi',
    "}",
    "",
    'value() { sed -n "s/^$1 //p"; }',
    "",
    'case "${1:-}" in',
    "generation)",
    "\tgeneration",
    "\t;;",
    "status)",
    "\tmine=$(generation)",
    '\techo "== $SELF"',
    '\techo "$mine"',
    "\tdrbdadm status \"$RES\" 2>&1 | sed 's/^/  /'",
    "\ttheirs=",
    '\tif [ -n "$PEER" ]; then',
    "\t\t# The peer's view over the operators' SSH (the fence key cannot do this); without it, run status there too.",
    '\t\ttheirs=$(ssh -n -o BatchMode=yes -o ConnectTimeout=3 "root@$PEER_MGMT" standort-split-brain generation 2>/dev/null) || theirs=',
    '\t\techo "== $PEER"',
    '\t\tif [ -n "$theirs" ]; then echo "$theirs"; else echo "(no answer over SSH: run standort-split-brain status on $PEER)"; fi',
    "\tfi",
    '\tmy_role=$(echo "$mine" | value role)',
    '\tmy_oos=$(echo "$mine" | value out-of-sync-kib)',
    '\tif [ -z "$theirs" ]; then',
    '\t\techo "newest: undecided (only $SELF seen; compare with $PEER)"',
    "\t\texit 0",
    "\tfi",
    '\ttheir_role=$(echo "$theirs" | value role)',
    '\ttheir_oos=$(echo "$theirs" | value out-of-sync-kib)',
    '\tif [ "$my_role" = Primary ] && [ "$their_role" != Primary ]; then newest=$SELF; why="the only primary"',
    '\telif [ "$their_role" = Primary ] && [ "$my_role" != Primary ]; then newest=$PEER; why="the only primary"',
    '\telif [ "${my_oos:-0}" -gt "${their_oos:-0}" ]; then newest=$SELF; why="more changes while apart (${my_oos} KiB against ${their_oos} KiB)"',
    '\telif [ "${their_oos:-0}" -gt "${my_oos:-0}" ]; then newest=$PEER; why="more changes while apart (${their_oos} KiB against ${my_oos} KiB)"',
    '\telse newest=; why="both alike"; fi',
    '\tif [ -n "$newest" ]; then',
    '\t\techo "newest: $newest ($why); to keep it: standort-split-brain repair --survivor $newest on both members"',
    "\telse",
    '\t\techo "newest: undecided ($why): name the survivor from what the services wrote"',
    "\tfi",
    "\t;;",
    "repair)",
    "\tshift",
    '\t[ "${1:-}" = --survivor ] || { echo "standort-split-brain: repair needs --survivor <host>: name the member whose data is kept" >&2; usage; }',
    "\tsurvivor=${2:-}",
    '\t[ -n "$survivor" ] || { echo "standort-split-brain: --survivor needs a host name" >&2; usage; }',
    '\t[ "$#" -eq 2 ] || usage',
    "\tknown=no",
    '\tfor m in $MEMBERS; do [ "$m" = "$survivor" ] && known=yes; done',
    '\t[ "$known" = yes ] || { log "refused: $survivor is not a member of the storage pair ($MEMBERS)"; exit 1; }',
    '\tif [ "$survivor" = "$SELF" ]; then',
    '\t\tlog "repair: $SELF survives; connecting to $PEER (its changes since the split are discarded there)"',
    '\t\tdrbdadm connect "$RES" || { log "drbdadm connect $RES failed (connected already? see drbdadm status)"; exit 1; }',
    "\t\texit 0",
    "\tfi",
    "\t# The victim discards its own data: it must not serve it right now.",
    '\tif [ -e "$ACTIVE_FLAG" ]; then',
    '\t\tlog "refused: $SELF serves (the storage VIP is here): hand over first (/etc/keepalived/standort-failover.sh handover)"',
    "\t\texit 1",
    "\tfi",
    '\tlog "repair: $SELF is the victim; discarding its changes since the split in favour of $survivor"',
    '\tdrbdadm disconnect "$RES" 2>/dev/null || true',
    '\tdrbdadm secondary "$RES" || { log "drbdadm secondary $RES failed: is the device still mounted?"; exit 1; }',
    '\tdrbdadm connect --discard-my-data "$RES" || { log "drbdadm connect --discard-my-data $RES failed"; exit 1; }',
    '\tlog "repair: $SELF reconnects and resynchronises from $survivor"',
    "\t;;",
    "*)",
    "\tusage",
    "\t;;",
    "esac",
    "",
  ].join("\n");
}

/** True when the host holds the replicated data volume: a member of the storage pair (a dissolved pair: its active member). */
export function holdsDataVolume(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair?.role === "storage" && dataMembers(pair).includes(hostName);
}
