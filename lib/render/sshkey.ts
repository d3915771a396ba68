/**
 * Ed25519 keys in OpenSSH's formats, derived from a seed: the stand-in for
 * `@pulumi/tls` keys in offline plans and under the mock runtime, where the
 * same input must give the same bytes. Real stacks use `tls.PrivateKey`
 * (`algorithm: "ED25519"`), whose `privateKeyOpenssh`/`publicKeyOpenssh` have
 * exactly these formats; a derived key is public knowledge and never deployed.
 *
 * Formats: the public key line is RFC 8709 §4 (`ssh-ed25519` + base64 of the
 * SSH wire encoding); the private key is OpenSSH's `openssh-key-v1`
 * container, unencrypted (PROTOCOL.key in the OpenSSH sources). Node's crypto
 * does the curve arithmetic; writing the two containers is all that is left,
 * and no maintained npm package derives a key from a seed.
 */
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";

/** An Ed25519 key pair as `tls.PrivateKey` exposes it. */
export interface OpensshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` … (unencrypted), ending in a newline. */
  readonly privateKeyOpenssh: string;
  /** `ssh-ed25519 <base64>` followed by a newline, as `tls.PrivateKey.publicKeyOpenssh`. */
  readonly publicKeyOpenssh: string;
}

/** PKCS#8 DER prefix of an Ed25519 private key (RFC 8410 §7): the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const sshString = (value: Buffer | string) => {
  const b = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  return Buffer.concat([u32(b.length), b]);
};

/** The SSH wire encoding of an Ed25519 public key (RFC 8709 §4). */
function publicBlob(publicKey: Buffer): Buffer {
  return Buffer.concat([sshString("ssh-ed25519"), sshString(publicKey)]);
}

/** Derives an Ed25519 key pair from `seed` (SHA-256 of the text is the private seed). */
export function ed25519KeyFromSeed(seed: string, comment = ""): OpensshKeyPair {
  const secret = createHash("sha256").update(seed).digest();
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secret]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  const publicKey = Buffer.from(jwk.x!, "base64url");
  const blob = publicBlob(publicKey);
  // The check integer only has to repeat; derived from the seed so the bytes stay stable.
  const check = createHash("sha256").update(`check:${seed}`).digest().readUInt32BE(0);
  let body = Buffer.concat([
    u32(check),
    u32(check),
    sshString("ssh-ed25519"),
    sshString(publicKey),
    sshString(Buffer.concat([secret, publicKey])),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (body.length + pad.length) % 8 !== 0; i++) pad.push(i);
  body = Buffer.concat([body, Buffer.from(pad)]);
  const container = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(blob),
    sshString(body),
  ]);
  const base64 = container.toString("base64").replace(/(.{70})/g, "$1\n");
  return {
    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64.trimEnd()}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKeyOpenssh: `ssh-ed25519 ${blob.toString("base64")}\n`,
  };
}
