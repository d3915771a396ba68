#!/bin/sh
# standort-host-metrics: what node exporter cannot see by itself, for its
# textfile collector, written atomically: each WireGuard tunnel's last
# handshake (wg(8) `show <if> latest-handshakes`) and each certificate's
# expiry (openssl x509 -enddate). Run every minute by standort-host-metrics.timer.
#
#   standort-host-metrics [--pair STATE_FILE=ROLE]... [--tunnel IFACE=PEER_SITE]... [--certificates GLOB]...
#
# --pair: the keepalived pair's state as its failover script recorded it
# (`master <pid>`, `backup`, `fault`, `stop`), written to the same file the
# script writes on every change (standort-vrrp-ROLE.prom), so a member keeps
# reporting after a reboot or an upgrade that ran no state change.
#
# A tunnel whose interface is not up on this member (the passive firewall)
# writes nothing: the rule takes the freshest handshake of either member.
set -u
dir=${STANDORT_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
tunnels= globs= pairs=
while [ $# -gt 0 ]; do
	case "$1" in
	--pair) pairs="$pairs $2"; shift 2 ;;
	--tunnel) tunnels="$tunnels $2"; shift 2 ;;
	--certificates) globs="$globs $2"; shift 2 ;;
	*) echo "standort-host-metrics: unknown argument $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$dir"
for p in $pairs; do
	state_file=${p%%=*} role=${p#*=}
	[ -r "$state_file" ] || continue
	case "$(cat "$state_file")" in master*) v=1 ;; *) v=0 ;; esac
	t=$dir/.standort-vrrp-$role.prom.$$
	printf '# HELP standort_vrrp_master 1 while this member is the active one of its pair.\n# TYPE standort_vrrp_master gauge\nstandort_vrrp_master{pair="%s"} %s\n' "$role" "$v" >"$t" &&
		mv -f "$t" "$dir/standort-vrrp-$role.prom"
done
tmp=$dir/.standort-host.prom.$$
{
	echo "# HELP standort_wireguard_latest_handshake_timestamp_seconds Last handshake with the peer site (0: none yet)."
	echo "# TYPE standort_wireguard_latest_handshake_timestamp_seconds gauge"
	for t in $tunnels; do
		iface=${t%%=*} peer=${t#*=}
		wg show "$iface" latest-handshakes 2>/dev/null | while read -r _key ts; do
			echo "standort_wireguard_latest_handshake_timestamp_seconds{interface=\"$iface\",peer=\"$peer\"} ${ts:-0}"
		done
	done
	echo "# HELP standort_certificate_expiry_timestamp_seconds When the certificate expires (notAfter)."
	echo "# TYPE standort_certificate_expiry_timestamp_seconds gauge"
	for g in $globs; do
		for cert in $g; do
			[ -f "$cert" ] || continue
			end=$(openssl x509 -noout -enddate -in "$cert" 2>/dev/null | sed 's/^notAfter=//') || continue
			[ -n "$end" ] || continue
			echo "standort_certificate_expiry_timestamp_seconds{path=\"$cert\"} $(date -d "$end" +%s)"
		done
	done
} >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$dir/standort-host.prom"
