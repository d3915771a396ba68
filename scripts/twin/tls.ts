/**
 * The twin's own certificate authority and one server certificate signed by
 * it (OpenSSL, P-256, valid for two days): the provider API stand-in and the
 * ingress stand-ins present it, and the twin's machines trust the CA in
 * place of the public ones, so the rendered scripts' `curl` calls verify it.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TwinTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** Writes `ca.crt`, `server.crt` and `server.key` into `dir`; the certificate holds `names` (wildcards allowed). */
export function makeTls(dir: string, names: ReadonlyArray<string>): TwinTls {
  mkdirSync(dir, { recursive: true });
  const at = (f: string) => join(dir, f);
  writeFileSync(at("san.cnf"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\n`);
  const ossl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  ossl("req", "-x509", ...key, "-days", "2", "-subj", "/CN=standort twin CA", "-keyout", at("ca.key"), "-out", at("ca.crt"));
  ossl("req", ...key, "-subj", "/CN=standort twin", "-keyout", at("server.key"), "-out", at("server.csr"));
  ossl(
    "x509",
    "-req",
    "-in",
    at("server.csr"),
    "-CA",
    at("ca.crt"),
    "-CAkey",
    at("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    at("san.cnf"),
    "-out",
    at("server.crt"),
  );
  return { ca: at("ca.crt"), cert: at("server.crt"), key: at("server.key") };
}
