import * as pulumi from "@pulumi/pulumi";
import { SiteModel, addressPlan } from "../../lib/model/model";
import { NetworkSegments } from "../network-segments";
import { provisioningFor } from "../provisioning";

export interface SiteArgs {
  /** The validated model of the site this stack deploys. */
  readonly model: SiteModel;
}

/** One location, laid out to the standard scheme, whatever the provider. */
export class Site extends pulumi.ComponentResource {
  public readonly network: NetworkSegments;
  /** The address plan table (segment, CIDR, gateway, usable range, VIPs). */
  public readonly addressPlan: ReturnType<typeof addressPlan>;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:site:Site", name, {}, opts);
    const provisioning = provisioningFor(args.model);
    this.network = new NetworkSegments(`${name}-net`, { model: args.model, provisioning }, { parent: this });
    this.addressPlan = addressPlan(args.model);
    this.registerOutputs({ network: this.network, addressPlan: this.addressPlan });
  }
}
