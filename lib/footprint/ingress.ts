/**
 * The ingress on every virtualization host of a compose site: HAProxy
 * (Debian's, the same daemon as the proxy pair) listening on the ingress
 * ports, 8443 for read-write and 8444 for read-only instances, terminating
 * TLS and routing by SNI to each instance's loopback port. The proxy pair
 * passes TLS through, so the certificate here is the one clients see.
 *
 * Certificates: every PEM bundle (certificate, chain, key) in
 * `INGRESS_CERT_DIR`; HAProxy picks one by SNI (`crt <dir>`, HAProxy
 * configuration manual 5.1). The operator puts the certificates of the
 * public names there (their CA or ACME). Until one is there, the unit's
 * start creates a self-signed fallback for the host's names, so the ingress
 * runs from the first boot; a client that verifies refuses it, which is the
 * point: it tells that the certificate is missing.
 * Pure: instances in, file text out.
 */
import { SiteModel } from "../model/model";
import { FILE_PLACEHOLDER, RenderedFile, sshFile } from "../render/types";
import { INGRESS_PORTS } from "../render/policy";
import { Access, WorkloadInstance } from "./workloads";

/** Directory of the ingress's PEM bundles (certificate + key), one per name or wildcard. */
export const INGRESS_CERT_DIR = "/etc/haproxy/ingress";
/** The self-signed fallback's bundle, created only while the directory holds no other. */
export const INGRESS_FALLBACK_PEM = `${INGRESS_CERT_DIR}/00-standort-fallback.pem`;
/** The program that creates the fallback, run before every start of HAProxy (a drop-in). */
export const INGRESS_CERT_SCRIPT = "/usr/local/sbin/standort-ingress-cert";
export const INGRESS_DROP_IN = "/etc/systemd/system/haproxy.service.d/standort-ingress.conf";
/** Days the self-signed fallback is valid: it is replaced by the operator's certificate, not renewed. */
export const FALLBACK_CERT_DAYS = 90;

/** The backend that answers names a host does not serve in a mode (not a project name: those are service slugs). */
const MISDIRECTED = "standort_misdirected";

/** The ingress port of an access mode. */
export function ingressPort(access: Access): number {
  return access === "read-write" ? INGRESS_PORTS.readWrite : INGRESS_PORTS.readOnly;
}

function frontend(access: Access, instances: ReadonlyArray<WorkloadInstance>): string[] {
  const mine = instances.filter((i) => i.access === access);
  const port = ingressPort(access);
  const name = access === "read-write" ? "ingress_rw" : "ingress_ro";
  return [
    `frontend ${name}`,
    `\tbind :${port} ssl crt ${INGRESS_CERT_DIR}/ alpn http/1.1`,
    "\tmode http",
    "\toption forwardfor",
    "\thttp-request set-header X-Forwarded-Proto https",
    `\thttp-request set-header X-Forwarded-Port ${port}`,
    // SNI, not the Host header: the proxy pair routed this connection by SNI, and the two must agree.
    ...mine.map((i) => `\tuse_backend ${i.project} if { ssl_fc_sni -i ${i.names.join(" ")} }`),
    // http-request rules run before backend selection: the refusal lives in a backend of its own.
    `\tdefault_backend ${MISDIRECTED}`,
  ];
}

/**
 * Renders the ingress's `/etc/haproxy/haproxy.cfg` for a virtualization host
 * of a compose site. Both frontends always bind (the proxies' health checks
 * reach them), and answer 421 for names the host does not serve in that mode.
 */
export function renderIngressConfig(model: SiteModel, hostName: string, instances: ReadonlyArray<WorkloadInstance>): string {
  const lines = [
    `# standort: ingress of ${hostName} (${model.name}): TLS ends here, requests go by SNI to the workloads. Rendered; do not edit.`,
    "global",
    "\tlog /dev/log local0",
    "\tlog /dev/log local1 notice",
    "\tchroot /var/lib/haproxy",
    "\tstats socket /run/haproxy/admin.sock mode 660 level admin",
    "\tuser haproxy",
    "\tgroup haproxy",
    "\tdaemon",
    "\tmaxconn 4096",
    "\tssl-default-bind-options ssl-min-ver TLSv1.2",
    "",
    "defaults",
    "\tlog global",
    "\tmode http",
    "\toption httplog",
    "\toption dontlognull",
    "\ttimeout connect 5s",
    "\ttimeout client 60s",
    "\ttimeout server 60s",
    "\ttimeout http-request 10s",
    "\ttimeout tunnel 1h",
    "",
    ...frontend("read-write", instances),
    "",
    ...frontend("read-only", instances),
  ];
  lines.push(
    "",
    "# A name this host does not answer in this mode: misdirected request (RFC 9110, 15.5.20).",
    `backend ${MISDIRECTED}`,
    "\tmode http",
    '\thttp-request return status 421 content-type text/plain string "not served here\\n"',
  );
  for (const i of instances) {
    lines.push("", `backend ${i.project}`, "\tmode http", `\tserver ${i.project} 127.0.0.1:${i.upstreamPort} check inter 2s fall 3 rise 2`);
  }
  return lines.join("\n") + "\n";
}

/** The names a host's fallback certificate covers: every name its instances answer, sorted. */
export function fallbackNames(instances: ReadonlyArray<WorkloadInstance>): string[] {
  return [...new Set(instances.flatMap((i) => i.names))].sort();
}

/** The program that creates the fallback certificate when the directory holds no bundle. */
export function renderIngressCertScript(hostName: string, names: ReadonlyArray<string>): string {
  const san = [hostName, ...names].map((n) => `DNS:${n}`).join(",");
  return [
    "#!/bin/sh",
    "# standort: a self-signed fallback for the ingress while no certificate of the operator is there. Rendered; do not edit.",
    "set -eu",
    `dir=${INGRESS_CERT_DIR}`,
    'install -d -m 0750 -o root -g haproxy "$dir"',
    "# Any bundle of the operator's: use it, and drop the fallback (SNI would otherwise still pick it for a name it covers).",
    `if ls "$dir"/*.pem 2>/dev/null | grep -qv '/00-standort-fallback.pem$'; then rm -f ${INGRESS_FALLBACK_PEM}; exit 0; fi`,
    `[ -s ${INGRESS_FALLBACK_PEM} ] && exit 0`,
    // Assembled beside the directory (same filesystem, outside what HAProxy loads), then moved in at once.
    `tmp=$(mktemp -d ${INGRESS_CERT_DIR}.XXXXXX)`,
    "trap 'rm -rf \"$tmp\"' EXIT",
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days ${FALLBACK_CERT_DAYS} -subj "/CN=${hostName}" -addext "subjectAltName=${san}" -keyout "$tmp/key" -out "$tmp/cert" 2>/dev/null`,
    "umask 077",
    'cat "$tmp/cert" "$tmp/key" > "$tmp/bundle"',
    'chgrp haproxy "$tmp/bundle" && chmod 0640 "$tmp/bundle"',
    `mv "$tmp/bundle" ${INGRESS_FALLBACK_PEM}`,
    "",
  ].join("\n");
}

/**
 * The drop-in that runs the fallback program before HAProxy starts or reloads. A drop-in's
 * `ExecReload=` adds to the packaged unit's list (systemd.unit(5)), which would run the program after
 * HAProxy had reloaded the old set of certificates: the list is emptied first and given again in order,
 * as Debian's haproxy.service has it (check the file, then USR2 to the master).
 */
export function renderIngressDropIn(): string {
  return [
    "# standort: the ingress needs a certificate before HAProxy can bind its TLS frontends.",
    "[Service]",
    `ExecStartPre=${INGRESS_CERT_SCRIPT}`,
    "ExecReload=",
    `ExecReload=${INGRESS_CERT_SCRIPT}`,
    "ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS",
    "ExecReload=/bin/kill -USR2 $MAINPID",
    "",
  ].join("\n");
}

/**
 * HAProxy's own check (`haproxy -c`) of a staged ingress file. It loads the certificates, which may not exist
 * before the first start: the check points the file at a throw-away self-signed bundle instead.
 */
const INGRESS_CHECK = [
  "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT",
  'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check -keyout "$d/k" -out "$d/c" 2>/dev/null',
  'mkdir "$d/certs" && cat "$d/c" "$d/k" > "$d/certs/check.pem"',
  `sed "s#crt ${INGRESS_CERT_DIR}/#crt $d/certs/#" "$1" > "$d/haproxy.cfg"`,
  'haproxy -c -q -f "$d/haproxy.cfg"',
].join(" && ");

/** The ingress's files for one host, in delivery order (program, drop-in, configuration). */
export function ingressFiles(model: SiteModel, hostName: string, instances: ReadonlyArray<WorkloadInstance>): RenderedFile[] {
  const file = (path: string, content: string, mode: string, extra: Partial<RenderedFile> = {}): RenderedFile =>
    sshFile(path, content, { mode, ...extra });
  return [
    file(INGRESS_CERT_SCRIPT, renderIngressCertScript(hostName, fallbackNames(instances)), "0755", {
      check: { command: ["sh", "-n", FILE_PLACEHOLDER] },
    }),
    file(INGRESS_DROP_IN, renderIngressDropIn(), "0644", { reload: ["systemctl", "daemon-reload"] }),
    file("/etc/haproxy/haproxy.cfg", renderIngressConfig(model, hostName, instances), "0644", {
      check: { command: ["sh", "-c", INGRESS_CHECK, "ingress-check", FILE_PLACEHOLDER] },
      reload: ["sh", "-c", "systemctl enable --quiet haproxy && systemctl reload-or-restart haproxy"],
      healthCheck: ["systemctl", "is-active", "--quiet", "haproxy"],
    }),
  ];
}
