/**
 * The stack program of one location. It reads the stack configuration once,
 * validates every site file, and only then registers resources: bad input
 * never reaches a resource.
 */
import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import { Site, siteOutputs } from "../components/site";
import { loadSites } from "../lib/model/load";
import { InputError } from "../lib/model/validate";
import { parseStackConfig } from "../lib/model/stack-config";

/**
 * Runs the location stack selected by `standort:site`; returns the stack outputs
 * (address plan, failover addresses, hosts by role, pairs, what the partner needs).
 * @param options.sitesDir where the site files are read from. @default the repository's `sites/`
 */
export function locationStack(options: { sitesDir?: string } = {}): Record<string, unknown> {
  const stackFile = `stacks/Pulumi.${pulumi.getStack()}.yaml`;
  const config = parseStackConfig(pulumi.runtime.allConfig(), stackFile);
  const sites = loadSites(options.sitesDir);
  const model = sites.find((s) => s.name === config.site);
  if (!model) {
    throw new InputError([`${stackFile}: standort:site: ${config.site} has no site file (known: ${sites.map((s) => s.name).join(", ")})`]);
  }
  // Validation guarantees the partner exists; the lookup only narrows the type.
  const partner = sites.find((s) => s.name === model.partner);
  if (!partner) throw new InputError([`${model.file}: partner: ${model.partner} does not exist`]);
  const secrets = new pulumi.Config("standort");

  const providers: Record<string, pulumi.ProviderResource> = {};
  if (model.provider.kind === "hcloud") {
    if (config.hcloudToken === undefined) {
      throw new InputError([`${stackFile}: standort:hcloudToken: is required for a Hetzner Cloud site: pulumi config set --secret standort:hcloudToken <token>`]);
    }
    providers.hcloud = new hcloud.Provider("hcloud", { token: secrets.requireSecret("hcloudToken") });
  }

  const site = new Site(model.name, { model, partner, sites, sshPublicKey: config.sshPublicKey }, { providers });
  return siteOutputs(site);
}
