/**
 * The pool of container hosts (docker-compose or Kubernetes), spread over
 * physical hosts, each joined to exactly the segments its role needs, with
 * time sync, container runtime and node monitoring in its bootstrap.
 */
import * as pulumi from "@pulumi/pulumi";
import { HostModel, SegmentPlan, SiteModel } from "../../lib/model/model";
import { Role } from "../../lib/model/schema";
import { Host, HostContext, createRoleHosts } from "../host";
import { Bootstrap, bootstrapFor } from "../host/bootstrap";
import { InternalAddress, Placement } from "../provisioning";
import { apiVip, apiVipMechanism, controlPlaneNodes } from "../../lib/kubernetes/network";
import { KUBERNETES_PORTS } from "../../lib/kubernetes/constants";

/** The segments a role's hosts join at a site: those that list the role as a member. */
export function roleSegments(model: SiteModel, role: Role): string[] {
  return model.segments.filter((s: SegmentPlan) => s.members.includes(role)).map((s) => s.name);
}

export interface VirtualizationHostsArgs {
  /** The site's provisioning context. */
  readonly context: HostContext;
}

export class VirtualizationHosts extends pulumi.ComponentResource {
  /** The hosts by host name. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** Their failure domains (spread placement groups of at most 10, or physical machines). */
  public readonly placements: Readonly<Record<string, Placement>>;
  /** `compose` or `kubernetes`. */
  public readonly runtime: SiteModel["virtualization"]["runtime"];
  /** The segments every host of the pool joins, and no other. */
  public readonly segments: ReadonlyArray<string>;
  /** Packages and services every host of the pool starts with. */
  public readonly bootstrap: Bootstrap;
  /** The hosts as the model plans them (backends of the proxy tier). */
  public readonly planned: ReadonlyArray<HostModel>;
  /** Kubernetes sites where the provider holds the API address (a load balancer); undefined where kube-vip does. */
  public readonly apiAddress?: InternalAddress;

  constructor(name: string, args: VirtualizationHostsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:virtualization:VirtualizationHosts", name, {}, opts);
    const { model } = args.context;
    const role = createRoleHosts(name, "virtualization", args.context, this);
    this.hosts = role.hosts;
    this.placements = role.placements;
    this.runtime = model.virtualization.runtime;
    this.segments = roleSegments(model, "virtualization");
    this.bootstrap = bootstrapFor("virtualization", model);
    this.planned = model.hosts.filter((h) => h.role === "virtualization");
    if (this.runtime === "kubernetes" && apiVipMechanism(model) === "provider-load-balancer") {
      this.apiAddress = args.context.provisioning.createInternalAddress(
        name,
        model,
        {
          key: "kubernetes-api",
          segment: "app",
          address: apiVip(model),
          port: KUBERNETES_PORTS.apiServer,
          segments: args.context.segments,
          targets: controlPlaneNodes(model).map((h) => ({ host: h.name, machine: this.hosts[h.name] })),
        },
        this,
      );
    }
    this.registerOutputs({
      hosts: this.hosts,
      placements: this.placements,
      runtime: this.runtime,
      segments: this.segments,
      bootstrap: this.bootstrap,
      planned: this.planned,
    });
  }
}
