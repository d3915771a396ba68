/**
 * Runs a stack program under the Pulumi SDK's mock runtime and records every
 * resource registration: type, name, parent, inputs (secrets masked as
 * `[secret]`). Shared by the offline plan and the tests, so both see exactly
 * what `pulumi preview` would register.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { ed25519KeyFromSeed } from "../render/sshkey";
import { derivedCertificate, derivedEcdsaKey } from "../footprint/credentials";

/** One registration as the engine would receive it. */
export interface RecordedResource {
  readonly urn: string;
  readonly type: string;
  readonly name: string;
  /** URN of the parent; undefined for top-level resources. */
  readonly parent?: string;
  readonly custom: boolean;
  /** Inputs with secrets replaced by `[secret]` and resource references by their URN. */
  readonly inputs: Record<string, unknown>;
  /** Short digests of the masked secret inputs by property path: a diff shows that a secret changed, never its value. */
  readonly secretDigests: Readonly<Record<string, string>>;
  /** Names of the resources this one explicitly depends on. */
  readonly dependsOn: ReadonlyArray<string>;
  /**
   * URNs of every resource this one waits for: explicit `dependsOn` (a
   * component stands for its children) and the resources its inputs come
   * from, as the engine receives them (`RegisterResourceRequest.dependencies`), sorted.
   */
  readonly dependencies: ReadonlyArray<string>;
  readonly deleteBeforeReplace: boolean;
  readonly ignoreChanges: ReadonlyArray<string>;
}

export interface MockRunResult {
  readonly project: string;
  readonly stack: string;
  readonly resources: ReadonlyArray<RecordedResource>;
  /** Stack outputs, resolved, secrets masked. */
  readonly outputs: Record<string, unknown>;
}

export const SECRET_MASK = "[secret]";
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270";
const SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * Turns the wire form of properties into plain values, masking secrets. When
 * `digests` is given, it receives a short SHA-256 of each masked value by
 * property path, so a diff can tell that a secret changed without showing it
 * (as `pulumi preview --diff` does). Offline, every secret is a placeholder.
 */
export function unwireProperties(value: unknown, digests?: Record<string, string>, path = ""): unknown {
  if (value === UNKNOWN) return "(known after apply)";
  if (Array.isArray(value)) return value.map((v, i) => unwireProperties(v, digests, `${path}[${i}]`));
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[SIG_KEY] === SIG_SECRET) {
      if (digests)
        digests[path] = createHash("sha256")
          .update(JSON.stringify(record.value ?? null))
          .digest("hex")
          .slice(0, 16);
      return SECRET_MASK;
    }
    if (record[SIG_KEY] === SIG_RESOURCE) return { resource: record.urn };
    return Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((k) => [k, unwireProperties(record[k], digests, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}

/**
 * Computed outputs a mocked resource reports, by type. Inputs are echoed back;
 * these add what the provider would compute and later code reads.
 */
export type MockState = (name: string, inputs: Record<string, unknown>) => Record<string, unknown>;

/** Resource packages the mocks know; a registration from any other package fails the run. */
export const MOCKED_PACKAGES = ["hcloud", "random", "tls", "command", "kubernetes", "pulumi", "standort"] as const;

/** A mock's input as a plain string: secrets arrive wrapped (`{ [SIG_KEY]: SIG_SECRET, value }`). */
function plainText(value: unknown): string {
  const v =
    value && typeof value === "object" && (value as Record<string, unknown>)[SIG_KEY] === SIG_SECRET
      ? (value as { value: unknown }).value
      : value;
  return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
}

/** What each mocked certificate request asked for, by its (mock) PEM: the signing mock reads it back. */
const MOCK_CERT_REQUESTS = new Map<string, Record<string, unknown>>();

const COMPUTED: Record<string, MockState> = {
  // Generated values honour the requested length (renderers check it) and derive from the name (byte-stable plans).
  "random:index/randomPassword:RandomPassword": (name, inputs) => ({ result: mockText(name, Number(inputs.length ?? 16)) }),
  // RandomString honours its alphabet (lower, upper, numeric; special characters are never asked for here).
  "random:index/randomString:RandomString": (name, inputs) => {
    const alphabet = `${inputs.lower === false ? "" : "abcdefghijklmnopqrstuvwxyz"}${inputs.upper === false ? "" : "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}${inputs.numeric === false ? "" : "0123456789"}`;
    return { result: [...mockBytes(name, Number(inputs.length ?? 16))].map((b) => alphabet[b % alphabet.length]).join("") };
  },
  "random:index/randomBytes:RandomBytes": (name, inputs) => {
    const bytes = mockBytes(name, Number(inputs.length ?? 32));
    return { base64: bytes.toString("base64"), hex: bytes.toString("hex") };
  },
  // A working key derived from the name, in the formats tls.PrivateKey reports: Ed25519 (OpenSSH) or ECDSA P-256 (PEM).
  "tls:index/privateKey:PrivateKey": (name, inputs) => {
    if (inputs.algorithm === "ECDSA") {
      const key = derivedEcdsaKey(`mock:${name}`);
      return { privateKeyPem: key.privateKeyPem, publicKeyPem: key.publicKeyPem };
    }
    const key = ed25519KeyFromSeed(`mock:${name}`);
    return { privateKeyOpenssh: key.privateKeyOpenssh, publicKeyOpenssh: key.publicKeyOpenssh };
  },
  // Working certificates (ECDSA-SHA256) from the inputs; a request is only a handle to what it asked for.
  "tls:index/selfSignedCert:SelfSignedCert": (_name, inputs) => ({
    certPem: derivedCertificate({
      subjectKeyPem: plainText(inputs.privateKeyPem),
      commonName: String((inputs.subject as { commonName?: string } | undefined)?.commonName ?? ""),
      dnsNames: inputs.dnsNames as string[] | undefined,
      ca: inputs.isCaCertificate === true,
    }),
  }),
  "tls:index/certRequest:CertRequest": (name, inputs) => {
    const certRequestPem = `-----BEGIN CERTIFICATE REQUEST-----\n(mock request ${name})\n-----END CERTIFICATE REQUEST-----\n`;
    MOCK_CERT_REQUESTS.set(certRequestPem, inputs);
    return { certRequestPem };
  },
  "tls:index/locallySignedCert:LocallySignedCert": (_name, inputs) => {
    const request = MOCK_CERT_REQUESTS.get(plainText(inputs.certRequestPem));
    if (!request) return {};
    return {
      certPem: derivedCertificate({
        subjectKeyPem: plainText(request.privateKeyPem),
        commonName: String((request.subject as { commonName?: string } | undefined)?.commonName ?? ""),
        dnsNames: request.dnsNames as string[] | undefined,
        ca: inputs.isCaCertificate === true,
        issuer: { privateKeyPem: plainText(inputs.caPrivateKeyPem), certPem: plainText(inputs.caCertPem) },
      }),
    };
  },
  "hcloud:index/server:Server": (name) => ({ ipv4Address: "198.19.250.10", status: "running", name }),
  "hcloud:index/floatingIp:FloatingIp": () => ({ ipAddress: "198.19.251.10" }),
  "hcloud:index/primaryIp:PrimaryIp": () => ({ ipAddress: "198.19.252.10" }),
  "command:remote:Command": () => ({ stdout: "", stderr: "" }),
  // Offline, no other stack is reachable: a reference reports no outputs, as for a stack not deployed yet.
  "pulumi:pulumi:StackReference": () => ({ outputs: {}, secretOutputNames: [] }),
};

/** `length` bytes derived from `seed` (SHA-256 in counter mode): stable across runs, distinct per name. */
export function mockBytes(seed: string, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++) blocks.push(createHash("sha256").update(`${seed}#${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

/** `length` letters and digits derived from `seed`. */
export function mockText(seed: string, length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return [...mockBytes(seed, length)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** A stable numeric id (FNV-1a of the key) as the provider would hand out. */
export function mockId(key: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return String(hash);
}

/** Thrown for a registration or invoke the mocks do not cover, so a test never passes on an unmocked call. */
export class UnmockedCallError extends Error {}

function mockState(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, unknown> } {
  const pkg = args.type.split(":")[0];
  if (!(MOCKED_PACKAGES as readonly string[]).includes(pkg)) {
    throw new UnmockedCallError(`unmocked resource type ${args.type} (${args.name})`);
  }
  const computed = COMPUTED[args.type]?.(args.name, args.inputs) ?? {};
  // Ids are derived from names so that two runs give byte-identical plans;
  // numeric like real provider ids, because code converts them with Number().
  return { id: args.custom ? mockId(`${args.type}::${args.name}`) : undefined, state: { ...args.inputs, ...computed } };
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): { toJavaScript(): Record<string, unknown> };
  getDependenciesList(): string[];
  getDeletebeforereplace(): boolean;
  getIgnorechangesList(): string[];
}

interface ReadRequest {
  getType(): string;
  getName(): string;
  getId(): string;
  getParent(): string;
  getProperties(): { toJavaScript(): Record<string, unknown> };
}

/**
 * Runs `program` with the mock runtime and returns every registration.
 * `config` is the stack configuration as `namespace:key` → value; keys in
 * `secretKeys` are marked secret the way `pulumi config set --secret` does.
 */
export async function runUnderMocks(options: {
  project?: string;
  stack: string;
  config?: Record<string, string>;
  secretKeys?: ReadonlyArray<string>;
  program: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Called for every registration as it happens, also when the program later fails. */
  onRegister?: (type: string, name: string) => void;
}): Promise<MockRunResult> {
  const project = options.project ?? "standort";
  const records: RecordedResource[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: mockState,
      call: (args) => {
        throw new UnmockedCallError(`unmocked invoke ${args.token}`);
      },
    },
    project,
    options.stack,
    true,
  );
  pulumi.runtime.setAllConfig(options.config ?? {}, [...(options.secretKeys ?? [])]);

  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterRequest, cb: (err: unknown, resp: { getUrn(): string } | undefined) => void): Promise<void>;
    readResource(req: ReadRequest, cb: (err: unknown, resp: { getUrn(): string } | undefined) => void): Promise<void>;
  };
  const register = monitor.registerResource.bind(monitor);
  const read = monitor.readResource.bind(monitor);
  // Reads (StackReference, get functions) are recorded like registrations: the plan shows what a stack depends on.
  monitor.readResource = (req, cb) => {
    options.onRegister?.(req.getType(), req.getName());
    const pending = {
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent() || undefined,
      custom: true,
      inputs: { ...(unwireProperties(req.getProperties().toJavaScript()) as Record<string, unknown>), __read: req.getId() },
      secretDigests: {},
      dependsOn: [],
      dependencies: [],
      deleteBeforeReplace: false,
      ignoreChanges: [],
    };
    return read(req, (err, resp) => {
      if (!err && resp) records.push({ urn: resp.getUrn(), ...pending });
      cb(err, resp);
    });
  };
  monitor.registerResource = (req, cb) => {
    options.onRegister?.(req.getType(), req.getName());
    const secretDigests: Record<string, string> = {};
    const pending = {
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent() || undefined,
      custom: req.getCustom(),
      inputs: unwireProperties(req.getObject().toJavaScript(), secretDigests) as Record<string, unknown>,
      secretDigests,
      dependsOn: req.getDependenciesList().map((urn) => urn.split("::").pop() ?? urn),
      dependencies: [...new Set(req.getDependenciesList())].sort(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      ignoreChanges: req.getIgnorechangesList(),
    };
    return register(req, (err, resp) => {
      if (!err && resp) records.push({ urn: resp.getUrn(), ...pending });
      cb(err, resp);
    });
  };

  let exported: Record<string, unknown>;
  try {
    exported = await options.program();
  } catch (error) {
    await pulumi.runtime.disconnect();
    throw error;
  }
  const outputs: Record<string, unknown> = {};
  for (const key of Object.keys(exported).sort()) {
    outputs[key] = await resolveOutput(exported[key]);
  }
  await pulumi.runtime.disconnect();
  // Registration completes out of order; sort so the plan is byte-stable.
  records.sort((a, b) => (a.urn < b.urn ? -1 : a.urn > b.urn ? 1 : 0));
  return { project, stack: options.stack, resources: records, outputs };
}

/** Resolves an exported value; a secret anywhere in it masks the whole value, as the engine does. */
async function resolveOutput(value: unknown): Promise<unknown> {
  const output: pulumi.Output<unknown> = pulumi.output(value);
  const secret = await pulumi.isSecret(output);
  const resolved = await new Promise<unknown>((resolve) => output.apply((v: unknown) => resolve(v)));
  return secret ? SECRET_MASK : resolved;
}
