import * as pulumi from "@pulumi/pulumi";
import * as kubernetes from "@pulumi/kubernetes";
import type { SiteModel } from "../../lib/model/model";
import type { Footprint } from "../../lib/footprint/schema";
import type { SiteService } from "../../lib/footprint/services";
import {
  KubernetesObject,
  clusterManifests,
  placeholderServiceSecrets,
  runsKubernetes,
  serviceObjects,
  serviceSecretData,
} from "../../lib/kubernetes";

export interface WorkloadsArgs {
  /** The site whose cluster runs the workloads; must run Kubernetes. */
  readonly model: SiteModel;
  /** The services the site hosts, with the names it answers (`siteServices(footprint, sites, model.name)`). */
  readonly services: ReadonlyArray<SiteService>;
  /** The footprint: each hosted service's workload and file trees. */
  readonly footprint: Footprint;
  /**
   * Secret values by service and secret name, the stack configuration `standort:serviceSecrets`
   * (`{"<service>": {"<secret>": "…"}}`). Pass the config secret; it is marked secret again here.
   */
  readonly serviceSecrets: pulumi.Input<Record<string, Record<string, string>>>;
  /** The provider talking to the site's cluster (for example `new kubernetes.Provider(…, { kubeconfig })`). */
  readonly provider: kubernetes.Provider;
  /** Create the CNI (flannel) and the ingress controllers too. @default true */
  readonly clusterAddons?: boolean;
}

type Ctor = new (name: string, args: Record<string, unknown>, opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource;

/** The `@pulumi/kubernetes` class of each kind the pure builders produce. */
const CLASSES: Readonly<Record<string, Ctor>> = {
  "v1/Namespace": kubernetes.core.v1.Namespace,
  "v1/ServiceAccount": kubernetes.core.v1.ServiceAccount,
  "v1/ConfigMap": kubernetes.core.v1.ConfigMap,
  "v1/Secret": kubernetes.core.v1.Secret,
  "v1/Service": kubernetes.core.v1.Service,
  "apps/v1/DaemonSet": kubernetes.apps.v1.DaemonSet as unknown as Ctor,
  "apps/v1/Deployment": kubernetes.apps.v1.Deployment as unknown as Ctor,
  "networking.k8s.io/v1/Ingress": kubernetes.networking.v1.Ingress,
  "networking.k8s.io/v1/IngressClass": kubernetes.networking.v1.IngressClass,
  "rbac.authorization.k8s.io/v1/ClusterRole": kubernetes.rbac.v1.ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": kubernetes.rbac.v1.ClusterRoleBinding as unknown as Ctor,
};

/**
 * The services of one Kubernetes site as cluster objects, through `@pulumi/kubernetes`:
 * per service a Namespace, a Secret from `serviceSecrets` (secret in inputs and state), and
 * per instance the site runs (`workloadInstances`: read-write where it takes writes, read-only
 * where it answers reads only) a Deployment, a ClusterIP Service and an Ingress of the mode's class (`standort-rw` on the hosts' 8443, `standort-ro` on 8444).
 * With `clusterAddons`, first the CNI and the two ingress controllers. Every object is the
 * one `lib/kubernetes` builds (and the tests validate against the Kubernetes schemas); this
 * component only creates them. Children are named `<name>-<service>-<object>` and
 * `<name>-cluster-<kind>-<object>`: adding a service never renames another's.
 */
export class Workloads extends pulumi.ComponentResource {
  /** Deployments by object name, the instance's project name (`<service>`, `<service>-ro`). */
  public readonly deployments: Readonly<Record<string, kubernetes.apps.v1.Deployment>>;
  /** Ingresses by object name. */
  public readonly ingresses: Readonly<Record<string, kubernetes.networking.v1.Ingress>>;
  /** The cluster-wide objects (CNI, ingress controllers) by child name. */
  public readonly addons: Readonly<Record<string, pulumi.CustomResource>>;

  constructor(name: string, args: WorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    // Refused before anything is registered.
    if (!runsKubernetes(args.model))
      throw new Error(`${name}: ${args.model.name} runs ${args.model.virtualization.runtime}, not Kubernetes`);
    super("standort:kubernetes:Workloads", name, {}, opts);
    const { model, provider } = args;
    // Shapes from placeholder values: the objects do not depend on the secrets, only the Secret's data does.
    const objects = serviceObjects(model, args.services, args.footprint, placeholderServiceSecrets(args.footprint));
    const names = new Set<string>();
    const create = (
      child: string,
      object: KubernetesObject,
      extra: Record<string, unknown>,
      dependsOn: pulumi.Resource[],
    ): pulumi.CustomResource => {
      if (names.has(child)) throw new Error(`${name}: two objects would be named ${child}`);
      names.add(child);
      const Class = CLASSES[`${object.apiVersion}/${object.kind}`];
      if (!Class) throw new Error(`${name}: no @pulumi/kubernetes class for ${object.apiVersion}/${object.kind}`);
      // The typed classes set apiVersion and kind themselves.
      const body: Record<string, unknown> = { ...object, ...extra };
      delete body.apiVersion;
      delete body.kind;
      return new Class(child, body, { parent: this, provider, dependsOn });
    };

    const addons: Record<string, pulumi.CustomResource> = {};
    if (args.clusterAddons ?? true) {
      const namespaces = new Map<string, pulumi.CustomResource>();
      for (const object of clusterManifests()) {
        const metadata = object.metadata as { name: string; namespace?: string };
        const child = `${name}-cluster-${object.kind.toLowerCase()}-${metadata.namespace ? `${metadata.namespace}-` : ""}${metadata.name}`;
        const namespace = metadata.namespace ? namespaces.get(metadata.namespace) : undefined;
        if (metadata.namespace && !namespace) throw new Error(`${name}: ${child} comes before its namespace ${metadata.namespace}`);
        addons[child] = create(child, object, {}, namespace ? [namespace] : []);
        if (object.kind === "Namespace") namespaces.set(metadata.name, addons[child]);
      }
    }
    // The pods need the pod network; the ingress needs its controllers.
    const afterAddons = Object.values(addons);

    const deployments: Record<string, kubernetes.apps.v1.Deployment> = {};
    const ingresses: Record<string, kubernetes.networking.v1.Ingress> = {};
    const allSecrets = pulumi.output(args.serviceSecrets);
    for (const entry of objects) {
      const service = args.footprint.services.find((s) => s.name === entry.service)!;
      const namespace = create(`${name}-${entry.service}-namespace`, entry.namespace, {}, afterAddons);
      const inNamespace = [namespace];
      const secret = entry.secret
        ? create(
            `${name}-${entry.service}-secret`,
            entry.secret,
            // Secret as a whole: the values never reach the state or a diff in clear.
            { stringData: pulumi.secret(allSecrets.apply((all) => serviceSecretData(service, all))) },
            inNamespace,
          )
        : undefined;
      for (const { instance, deployment, service: svc, ingress } of entry.instances) {
        const project = instance.project;
        deployments[project] = create(`${name}-${project}-deployment`, deployment, {}, [
          ...inNamespace,
          ...(secret ? [secret] : []),
        ]) as kubernetes.apps.v1.Deployment;
        create(`${name}-${project}-service`, svc, {}, inNamespace);
        ingresses[project] = create(`${name}-${project}-ingress`, ingress, {}, inNamespace) as kubernetes.networking.v1.Ingress;
      }
    }
    this.deployments = deployments;
    this.ingresses = ingresses;
    this.addons = addons;
    this.registerOutputs({ deployments: this.deployments, ingresses: this.ingresses, addons: this.addons });
  }
}
