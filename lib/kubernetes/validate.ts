/**
 * Offline validation of Kubernetes objects against the Kubernetes OpenAPI
 * schemas, with unknown fields refused.
 *
 * The schemas: `kubernetes-models` (github.com/tommy351/kubernetes-models-ts),
 * whose validators are generated with ajv from the Kubernetes OpenAPI
 * specification (4.5.1: Kubernetes 1.33). They check required fields, types,
 * enums and formats. The OpenAPI specification does not say
 * `additionalProperties: false`, so those validators accept a misspelt field that
 * the API server's strict field validation (`kubectl`'s default since 1.27) refuses;
 * kubeconform's `-strict` closes the same gap by adding `additionalProperties: false`
 * to every object schema. Here the same effect comes from watching the generated
 * validator: the object is validated through a proxy that records which fields the
 * validator looks up. A validator reads exactly the properties its schema names, and
 * enumerates the keys of a map (labels, `data`); any field of an object that was neither
 * read nor enumerated is unknown to the schema.
 * Pure: no Pulumi, no I/O.
 */
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { IngressClass } from "kubernetes-models/networking.k8s.io/v1/IngressClass";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";

/** The kinds the renderers and builders produce, by `apiVersion/kind`. */
const MODELS: Readonly<Record<string, { prototype: { validate(): void } }>> = {
  "v1/Namespace": Namespace,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Pod": Pod,
  "apps/v1/Deployment": Deployment,
  "apps/v1/DaemonSet": DaemonSet,
  "networking.k8s.io/v1/Ingress": Ingress,
  "networking.k8s.io/v1/IngressClass": IngressClass,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
};

/** The Kubernetes release whose OpenAPI schemas `kubernetes-models` 4.5.1 carries. */
export const SCHEMA_KUBERNETES_VERSION = "1.33";

/** The kinds `validateManifest` knows (`apiVersion/kind`). */
export const VALIDATED_KINDS: ReadonlyArray<string> = Object.keys(MODELS).sort();

interface Watched {
  readonly path: string;
  readonly target: Record<string, unknown>;
  readonly read: Set<string>;
  enumerated: boolean;
}

/** A deep copy of `value` in which every object is a proxy recording the fields read from it. */
function watch(value: unknown, path: string, seen: Watched[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => watch(v, `${path}/${i}`, seen));
  if (!value || typeof value !== "object") return value;
  const target: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) target[k] = watch(v, `${path}/${k}`, seen);
  const entry: Watched = { path, target, read: new Set(), enumerated: false };
  seen.push(entry);
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === "string") entry.read.add(key);
      return Reflect.get(t, key, receiver) as unknown;
    },
    has(t, key) {
      if (typeof key === "string") entry.read.add(key);
      return Reflect.has(t, key);
    },
    ownKeys(t) {
      entry.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

/** The object's name for messages: `Deployment groupware/groupware-rw`. */
export function manifestName(manifest: Record<string, unknown>): string {
  const metadata = (manifest.metadata ?? {}) as { name?: unknown; namespace?: unknown };
  const name = typeof metadata.name === "string" ? metadata.name : "(no name)";
  const namespace = typeof metadata.namespace === "string" ? `${metadata.namespace}/` : "";
  return `${String(manifest.kind)} ${namespace}${name}`;
}

/**
 * Validates one Kubernetes object (plain JSON: what `kubectl apply` would send) against
 * the OpenAPI schema of its kind. Returns one line per problem, each naming the object
 * and the field by its JSON pointer:
 * `Deployment groupware/groupware-rw: /spec/template/spec/containers/0/ports/0/containerPort: must be integer`,
 * `…: /spec/replicas: is required`, `…: /spec/template/spec/containers/0/imagePullPolicyy: unknown field`.
 * An apiVersion/kind the module has no schema for is one problem. Empty when valid.
 */
export function validateManifest(manifest: unknown): string[] {
  if (!manifest || typeof manifest !== "object" || Array.isArray(manifest)) return ["(object): must be a mapping"];
  const record = manifest as Record<string, unknown>;
  const name = manifestName(record);
  const key = `${String(record.apiVersion)}/${String(record.kind)}`;
  const model = Object.hasOwn(MODELS, key) ? MODELS[key] : undefined;
  if (!model) return [`${name}: /apiVersion, /kind: ${key} has no schema here (known: ${VALIDATED_KINDS.join(", ")})`];
  const seen: Watched[] = [];
  const watched = watch(record, "", seen);
  try {
    model.prototype.validate.call(watched);
  } catch (error) {
    const errors = (
      error as { errors?: Array<{ instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }> }
    ).errors;
    if (!errors) throw error;
    return errors.map((e) =>
      e.keyword === "required"
        ? `${name}: ${e.instancePath}/${String(e.params.missingProperty)}: is required`
        : `${name}: ${e.instancePath || "/"}: ${e.message ?? e.keyword}`,
    );
  }
  // Valid by the schema: now every field must be one the schema knows.
  return seen
    .filter((w) => !w.enumerated)
    .flatMap((w) =>
      Object.keys(w.target)
        .filter((k) => !w.read.has(k))
        .map((k) => `${name}: ${w.path}/${k}: unknown field (not in the Kubernetes ${SCHEMA_KUBERNETES_VERSION} schema of ${key})`),
    );
}

/** Validates every object; returns all problems. */
export function validateManifests(manifests: ReadonlyArray<unknown>): string[] {
  return manifests.flatMap(validateManifest);
}
