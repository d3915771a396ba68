/**
 * The Kubernetes objects of the services a site hosts, as plain JSON: per
 * service a Namespace, a Secret with its secrets, and per access mode the site
 * serves a Deployment, a Service and an Ingress of that mode's class. The
 * Workloads component creates exactly these through `@pulumi/kubernetes`; the
 * tests validate them offline. Same inputs, same objects. Pure.
 */
import type { SiteModel } from "../model/model";
import type { Footprint, FootprintService, WorkloadContainer } from "../footprint/schema";
import type { SiteService } from "../footprint/services";
import { storageVip } from "../footprint/jobs";
import { Access, WorkloadInstance, containerEnvironment, serviceSecretNames, workloadInstances } from "../footprint/workloads";
import { INGRESS_CLASSES, SERVICE_PORT } from "./constants";
import { KubernetesObject, MANAGED_BY } from "./manifests";

const ACCESS_CLASS: Record<Access, string> = { "read-write": INGRESS_CLASSES.readWrite, "read-only": INGRESS_CLASSES.readOnly };

/** The name of the serving container's port, which the Service targets. */
const HTTP_PORT_NAME = "http";

/**
 * The NFS server the workloads mount their trees from: the storage pair's VIP (`storageVip`,
 * in the data segment; the zone rule `app-to-data-nfs` lets the virtualization hosts reach it
 * on 2049). Throws when the model has no storage VIP.
 */
export function nfsServer(model: SiteModel): string {
  const vip = storageVip(model);
  if (!vip) throw new Error(`${model.name}: the storage pair has no VIP to serve NFS`);
  return vip;
}

/** The name of a service's Secret in its namespace. */
export function secretObjectName(service: string): string {
  return `${service}-secrets`;
}

/**
 * The secret values of a service from the stack's `serviceSecrets`, by secret name.
 * Throws naming every secret the workload needs and the configuration lacks.
 */
export function serviceSecretData(
  service: FootprintService,
  all: Readonly<Record<string, Readonly<Record<string, string>>>>,
): Record<string, string> {
  const given = Object.hasOwn(all, service.name) ? all[service.name] : {};
  const wanted = serviceSecretNames(service.workload);
  const missing = wanted.filter((name) => !Object.hasOwn(given, name) || given[name] === "");
  if (missing.length > 0)
    throw new Error(
      `standort:serviceSecrets: ${service.name}: ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} required by its workload: pulumi config set --secret --path 'standort:serviceSecrets.${service.name}.${missing[0]}' <value>`,
    );
  return Object.fromEntries(wanted.map((name) => [name, given[name]]));
}

type EnvVar = { name: string; value: string } | { name: string; valueFrom: { secretKeyRef: { name: string; key: string } } };

/**
 * A container's environment in an instance, sorted by name: the plain variables as on
 * compose sites (`containerEnvironment`: `STANDORT_SERVICE`, `STANDORT_ACCESS`, the
 * footprint's `environment`, in the read-only instance `readOnly.environment` on top), and
 * each of `secrets` as a reference into the service's Secret unless a plain variable sets it.
 */
function containerEnv(instance: WorkloadInstance, container: WorkloadContainer): EnvVar[] {
  const plain = containerEnvironment(instance, container);
  const env: EnvVar[] = Object.entries(plain).map(([name, value]) => ({ name, value }));
  for (const [name, secret] of Object.entries(container.secrets))
    if (!Object.hasOwn(plain, name))
      env.push({ name, valueFrom: { secretKeyRef: { name: secretObjectName(instance.service), key: secret } } });
  return env.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The pod volume of a file tree. */
function volumeName(tree: string): string {
  return `tree-${tree}`;
}

/** The labels that select one instance's pods. */
function selectorLabels(instance: WorkloadInstance): Record<string, string> {
  return { "app.kubernetes.io/name": instance.service, "app.kubernetes.io/component": instance.access };
}

/**
 * The Deployment of one instance, named like the instance's compose project and proxy
 * backend (`<service>`, `<service>-ro`). Its trees come from the storage pair's NFS export
 * (server `nfsServer(model)`, path the tree's `path`), read-only in the read-only instance;
 * `replicas` from the footprint, spread over the nodes. The footprint's `command` replaces
 * the image's CMD as compose's `command` does, so it becomes `args`. Throws for a container
 * that publishes ports: the Kubernetes runtime does not publish ports on the hosts.
 */
export function deploymentObject(model: SiteModel, service: FootprintService, instance: WorkloadInstance): KubernetesObject {
  const readOnly = instance.access === "read-only";
  const publishing = service.workload.containers.filter((c) => c.publish.length > 0).map((c) => c.name);
  if (publishing.length > 0)
    throw new Error(
      `${model.name}: ${service.name}: container(s) ${publishing.join(", ")} publish ports, which the Kubernetes runtime does not support: serve the service from a compose site or drop publish`,
    );
  const trees = new Map(service.data.files.map((f) => [f.name, f.path]));
  const used = [...new Set(service.workload.containers.flatMap((c) => c.volumes.map((v) => v.tree)))].sort();
  const server = nfsServer(model);
  const labels = { ...MANAGED_BY, ...selectorLabels(instance) };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: instance.project, namespace: service.name, labels },
    spec: {
      replicas: service.workload.replicas,
      selector: { matchLabels: selectorLabels(instance) },
      template: {
        metadata: { labels },
        spec: {
          // The service's environment is what the footprint says, not the Services of its namespace.
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "kubernetes.io/hostname",
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: { matchLabels: selectorLabels(instance) },
            },
          ],
          containers: service.workload.containers.map((c) => ({
            name: c.name,
            image: c.image,
            ...(c.command ? { args: [...c.command] } : {}),
            ...(c.port !== undefined
              ? {
                  ports: [{ name: HTTP_PORT_NAME, containerPort: c.port, protocol: "TCP" }],
                  readinessProbe: { tcpSocket: { port: HTTP_PORT_NAME }, periodSeconds: 5 },
                }
              : {}),
            env: containerEnv(instance, c),
            ...(c.volumes.length > 0
              ? {
                  volumeMounts: c.volumes.map((v) => ({
                    name: volumeName(v.tree),
                    mountPath: v.mount,
                    ...(readOnly ? { readOnly: true } : {}),
                  })),
                }
              : {}),
          })),
          ...(used.length > 0
            ? {
                volumes: used.map((tree) => {
                  const path = trees.get(tree);
                  if (!path) throw new Error(`${service.name}: volume tree ${tree} is not in data.files`);
                  return { name: volumeName(tree), nfs: { server, path, ...(readOnly ? { readOnly: true } : {}) } };
                }),
              }
            : {}),
        },
      },
    },
  };
}

/** The ClusterIP Service in front of one instance: port 80 to the serving container's `http` port. */
export function serviceObject(instance: WorkloadInstance): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: instance.project, namespace: instance.service, labels: { ...MANAGED_BY, ...selectorLabels(instance) } },
    spec: {
      type: "ClusterIP",
      selector: selectorLabels(instance),
      ports: [{ name: HTTP_PORT_NAME, port: SERVICE_PORT, targetPort: HTTP_PORT_NAME, protocol: "TCP" }],
    },
  };
}

/** The Ingress of one instance: its access mode's class, one rule per name it answers, all paths to its Service. */
export function ingressObject(instance: WorkloadInstance): KubernetesObject {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: {
      name: instance.project,
      namespace: instance.service,
      labels: { ...MANAGED_BY, ...selectorLabels(instance) },
      annotations: { "traefik.ingress.kubernetes.io/router.entrypoints": "websecure" },
    },
    spec: {
      ingressClassName: ACCESS_CLASS[instance.access],
      rules: instance.names.map((host) => ({
        host,
        http: {
          paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: instance.project, port: { name: HTTP_PORT_NAME } } } }],
        },
      })),
    },
  };
}

/** The Namespace of a service. */
export function namespaceObject(service: string): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: service, labels: { ...MANAGED_BY, "app.kubernetes.io/part-of": service } },
  };
}

/** The Secret of a service, from its secret values by secret name (`serviceSecretData`). */
export function secretObject(service: string, data: Readonly<Record<string, string>>): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: secretObjectName(service), namespace: service, labels: { ...MANAGED_BY, "app.kubernetes.io/part-of": service } },
    type: "Opaque",
    stringData: Object.fromEntries(
      Object.keys(data)
        .sort()
        .map((k) => [k, data[k]]),
    ),
  };
}

/** Everything one service puts into the cluster. */
export interface ServiceObjects {
  readonly service: string;
  readonly namespace: KubernetesObject;
  /** Absent when the workload uses no secret. */
  readonly secret?: KubernetesObject;
  /** Per instance (`workloadInstances`, by project name): its Deployment, Service and Ingress. */
  readonly instances: ReadonlyArray<{
    readonly instance: WorkloadInstance;
    readonly deployment: KubernetesObject;
    readonly service: KubernetesObject;
    readonly ingress: KubernetesObject;
  }>;
}

/**
 * The objects of every service the site hosts (`siteServices`), sorted by service, with the
 * secret values given (`placeholderServiceSecrets` for a plan or a check: the objects' shape
 * does not depend on them). The instances are the compose runtime's (`workloadInstances`):
 * one per access mode the site answers the service in. Throws when a hosted service is not
 * in the footprint or lacks a secret value.
 */
export function serviceObjects(
  model: SiteModel,
  entries: ReadonlyArray<SiteService>,
  footprint: Footprint,
  secrets: Readonly<Record<string, Readonly<Record<string, string>>>>,
): ServiceObjects[] {
  const instances = workloadInstances(footprint, entries);
  return [...new Set(instances.map((i) => i.service))].sort().map((name) => {
    const service = footprint.services.find((s) => s.name === name)!;
    return {
      service: name,
      namespace: namespaceObject(name),
      ...(serviceSecretNames(service.workload).length > 0 ? { secret: secretObject(name, serviceSecretData(service, secrets)) } : {}),
      instances: instances
        .filter((i) => i.service === name)
        .map((instance) => ({
          instance,
          deployment: deploymentObject(model, service, instance),
          service: serviceObject(instance),
          ingress: ingressObject(instance),
        })),
    };
  });
}

/** Placeholder secret values for every secret the services use (`placeholder:<service>/<secret>`), for plans and checks. */
export function placeholderServiceSecrets(footprint: Footprint): Record<string, Record<string, string>> {
  return Object.fromEntries(
    footprint.services.map((s) => [
      s.name,
      Object.fromEntries(serviceSecretNames(s.workload).map((n) => [n, `placeholder:${s.name}/${n}`])),
    ]),
  );
}
