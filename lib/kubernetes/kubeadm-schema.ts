/**
 * A strict JSON Schema of the kubeadm configuration kinds the renderers write
 * (`InitConfiguration`, `ClusterConfiguration`, `JoinConfiguration` of
 * `kubeadm.k8s.io/v1beta4`), checked with ajv. kubeadm publishes no OpenAPI or
 * JSON Schema for its configuration; this one is written from the Go types that
 * define it, `cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go` and
 * `cmd/kubeadm/app/apis/bootstraptoken/v1/types.go` in kubernetes/kubernetes (the
 * kubernetes.io page "kubeadm Configuration (v1beta4)" is generated from them): every
 * field with its JSON name and type, `required` where the Go field has no `omitempty`
 * and kubeadm needs it. Every object refuses unknown fields, as kubeadm's strict decoding
 * does (it fails on an unknown field since 1.26, "strict unmarshalling").
 * Pure: ajv and data.
 */
import Ajv, { ErrorObject } from "ajv";
import { KUBEADM_API_VERSION } from "./constants";

type Schema = Record<string, unknown>;

const str: Schema = { type: "string" };
const bool: Schema = { type: "boolean" };
const strings: Schema = { type: "array", items: str };
/** metav1.Duration as Go's time.ParseDuration reads it (`24h0m0s`, `90s`). */
const duration: Schema = { type: "string", pattern: "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" };
/** An object that refuses every field it does not name. */
const strict = (properties: Record<string, Schema>, required: string[] = []): Schema => ({
  type: "object",
  additionalProperties: false,
  properties,
  ...(required.length > 0 ? { required } : {}),
});
const typeMeta = (kind: string) => ({ apiVersion: { const: KUBEADM_API_VERSION }, kind: { const: kind } });

/** `Arg`: `{name, value}`, both required (v1beta4 replaced the v1beta3 string maps). */
const arg = strict({ name: str, value: str }, ["name", "value"]);
/** corev1.EnvVar as `ExtraEnvs` takes it (name, value; valueFrom is not used here). */
const envVar = strict({ name: str, value: str }, ["name"]);
const hostPathMount = strict(
  {
    name: str,
    hostPath: str,
    mountPath: str,
    readOnly: bool,
    pathType: { enum: ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"] },
  },
  ["name", "hostPath", "mountPath"],
);
const controlPlaneComponent = {
  extraArgs: { type: "array", items: arg },
  extraVolumes: { type: "array", items: hostPathMount },
  extraEnvs: { type: "array", items: envVar },
};
const imageMeta = { imageRepository: str, imageTag: str };
/** corev1.Taint: key and effect are required by the API. */
const taint = strict({ key: str, value: str, effect: { enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"] }, timeAdded: str }, [
  "key",
  "effect",
]);
const apiEndpoint = strict({ advertiseAddress: str, bindPort: { type: "integer", minimum: 1, maximum: 65535 } });
const nodeRegistration = strict({
  name: str,
  criSocket: str,
  taints: { type: "array", items: taint },
  kubeletExtraArgs: { type: "array", items: arg },
  ignorePreflightErrors: strings,
  imagePullPolicy: { enum: ["Always", "IfNotPresent", "Never"] },
  imagePullSerial: bool,
});
const patches = strict({ directory: str });
const timeouts = strict({
  controlPlaneComponentHealthCheck: duration,
  kubeletHealthCheck: duration,
  kubernetesAPICall: duration,
  etcdAPICall: duration,
  tlsBootstrap: duration,
  discovery: duration,
  upgradeManifests: duration,
});
/** bootstraptoken/v1 `BootstrapToken`: the token is required and `[a-z0-9]{6}.[a-z0-9]{16}`. */
const bootstrapToken = strict(
  {
    token: { type: "string", pattern: "^[a-z0-9]{6}\\.[a-z0-9]{16}$" },
    description: str,
    ttl: duration,
    expires: str,
    usages: { type: "array", items: { enum: ["signing", "authentication"] } },
    groups: strings,
  },
  ["token"],
);
const certificateKey: Schema = { type: "string", pattern: "^[a-f0-9]{64}$" };

const initConfiguration = strict(
  {
    ...typeMeta("InitConfiguration"),
    bootstrapTokens: { type: "array", items: bootstrapToken },
    dryRun: bool,
    nodeRegistration,
    localAPIEndpoint: apiEndpoint,
    certificateKey,
    skipPhases: strings,
    patches,
    timeouts,
  },
  ["apiVersion", "kind"],
);

const clusterConfiguration = strict(
  {
    ...typeMeta("ClusterConfiguration"),
    etcd: strict({
      local: strict(
        {
          ...imageMeta,
          dataDir: str,
          extraArgs: { type: "array", items: arg },
          extraEnvs: { type: "array", items: envVar },
          serverCertSANs: strings,
          peerCertSANs: strings,
        },
        ["dataDir"],
      ),
      external: strict({ endpoints: strings, caFile: str, certFile: str, keyFile: str }, ["endpoints"]),
    }),
    networking: strict({ serviceSubnet: str, podSubnet: str, dnsDomain: str }),
    kubernetesVersion: str,
    controlPlaneEndpoint: str,
    apiServer: strict({ ...controlPlaneComponent, certSANs: strings }),
    controllerManager: strict(controlPlaneComponent),
    scheduler: strict(controlPlaneComponent),
    dns: strict({ ...imageMeta, disabled: bool }),
    proxy: strict({ disabled: bool }),
    certificatesDir: str,
    imageRepository: str,
    featureGates: { type: "object", additionalProperties: bool },
    clusterName: str,
    encryptionAlgorithm: { enum: ["ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"] },
    certificateValidityPeriod: duration,
    caCertificateValidityPeriod: duration,
  },
  ["apiVersion", "kind"],
);

const joinConfiguration = strict(
  {
    ...typeMeta("JoinConfiguration"),
    dryRun: bool,
    nodeRegistration,
    caCertPath: str,
    discovery: strict({
      bootstrapToken: strict(
        {
          token: { type: "string", pattern: "^[a-z0-9]{6}\\.[a-z0-9]{16}$" },
          apiServerEndpoint: str,
          caCertHashes: { type: "array", items: { type: "string", pattern: "^sha256:[a-f0-9]{64}$" } },
          unsafeSkipCAVerification: bool,
        },
        ["token"],
      ),
      file: strict({ kubeConfigPath: str }, ["kubeConfigPath"]),
      tlsBootstrapToken: str,
    }),
    controlPlane: strict({ localAPIEndpoint: apiEndpoint, certificateKey }),
    skipPhases: strings,
    patches,
    timeouts,
  },
  ["apiVersion", "kind", "discovery"],
);

/** The schema of each kind, by `kind`. */
export const KUBEADM_SCHEMAS: Readonly<Record<string, Schema>> = {
  InitConfiguration: initConfiguration,
  ClusterConfiguration: clusterConfiguration,
  JoinConfiguration: joinConfiguration,
};

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = Object.fromEntries(Object.entries(KUBEADM_SCHEMAS).map(([kind, schema]) => [kind, ajv.compile(schema)]));

/** One ajv error as a line naming the field: `/discovery/bootstrapToken/token: must match pattern …`. */
export function formatSchemaError(e: ErrorObject): string {
  const at = e.instancePath || "/";
  if (e.keyword === "required") return `${e.instancePath}/${String(e.params.missingProperty)}: is required`;
  if (e.keyword === "additionalProperties") return `${e.instancePath}/${String(e.params.additionalProperty)}: unknown field`;
  if (e.keyword === "enum")
    return `${at}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  if (e.keyword === "const") return `${at}: must be ${JSON.stringify(e.params.allowedValue)}`;
  return `${at}: ${e.message ?? e.keyword}`;
}

/**
 * Validates one kubeadm configuration document (a parsed YAML document). Returns one line
 * per problem, each naming the kind and the field (`JoinConfiguration /discovery/bootstrapToken/token: is required`);
 * empty when the document is valid. A document of another apiVersion or an unknown kind is
 * one problem.
 */
export function validateKubeadmDocument(doc: unknown): string[] {
  const record = doc && typeof doc === "object" && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined;
  if (!record) return ["(document): must be a mapping"];
  const kind = typeof record.kind === "string" ? record.kind : "";
  const validate = Object.hasOwn(validators, kind) ? validators[kind] : undefined;
  if (!validate) return [`${kind || "(no kind)"}: /kind: must be one of ${Object.keys(KUBEADM_SCHEMAS).join(", ")}`];
  if (validate(record)) return [];
  return (validate.errors ?? []).map((e) => `${kind} ${formatSchemaError(e)}`);
}
