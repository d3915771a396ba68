/**
 * The stack program of one location. It reads the stack configuration once,
 * validates every site file and the footprint (with its policies), and only
 * then registers resources: bad input never reaches a resource.
 */
import * as pulumi from "@pulumi/pulumi";
import { Site, siteOutputs } from "../components/site";
import { Replication } from "../components/replication";
import * as kubernetes from "@pulumi/kubernetes";
import { ClusterCredentials, kubernetesDeliverables } from "../components/kubernetes-credentials";
import { Workloads } from "../components/kubernetes-workloads";
import { TunnelPeerOutputs } from "../components/site-tunnels";
import { loadFootprint } from "../lib/footprint/load";
import { siteServices } from "../lib/footprint/services";
import { siteTunnels } from "../lib/footprint/wireguard";
import { jobRunner, planJobs } from "../lib/footprint/jobs";
import { credentialPeers, planCredentials } from "../lib/footprint/credentials";
import { ReplicationCredentials } from "../components/replication-credentials";
import type { DeliverableFile } from "../components/host-config";
import type { RenderedFile } from "../lib/render/types";
import { footprintHostFiles, nameServerHostFiles, proxiedServices, workloadHostFiles } from "../lib/footprint/site-files";
import { publicProxyAddress } from "../lib/render/policy";
import { monitoringHostFiles } from "../lib/monitoring/host-files";
import { monitoringPlan } from "../lib/monitoring/site-plan";
import { serviceSecretNames, workloadInstances } from "../lib/footprint/workloads";
import { InputError } from "../lib/model/validate";
import { partnersOf } from "../lib/model/partners";
import { PeerOutput, parseStackConfig } from "../lib/model/stack-config";
import { failoverMove, requiredProviderEnv } from "../lib/render/keepalived";
import { adapterOf } from "../lib/providers/registry";
import { stackSetupFor } from "../lib/providers/provisioners";

/**
 * Runs the location stack selected by `standort:site`; returns the stack outputs
 * (address plan, failover addresses, hosts by role, pairs, what the partner needs,
 * the services the site answers, the tunnel keys the peers read).
 * @param options.sitesDir where the site files and the footprint are read from. @default the repository's `sites/`
 */
export function locationStack(options: { sitesDir?: string } = {}): Record<string, unknown> {
  const stackFile = `stacks/Pulumi.${pulumi.getStack()}.yaml`;
  // isConfigSecret is not in the SDK's typings but is what the engine uses to mark `secure:` values.
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
  const config = parseStackConfig(pulumi.runtime.allConfig(), stackFile, runtime.isConfigSecret ?? (() => true));
  const { footprint, sites } = loadFootprint(options.sitesDir);
  const model = sites.find((s) => s.name === config.site);
  if (!model) {
    throw new InputError([`${stackFile}: standort:site: ${config.site} has no site file (known: ${sites.map((s) => s.name).join(", ")})`]);
  }
  // Validation guarantees the partner exists; the check only narrows the list. Its own partner first, then the sites
  // it stands by for.
  const partners = partnersOf(model, sites);
  if (partners[0]?.name !== model.partner) throw new InputError([`${model.file}: partner: ${model.partner} does not exist`]);
  const missing = (key: string, why: string, secret = true) =>
    new InputError([
      `${stackFile}: standort:${key}: is required ${why}: pulumi config set${secret ? " --secret" : ""} standort:${key} <value>`,
    ]);
  if (config.sshPrivateKey === undefined) throw missing("sshPrivateKey", "to deliver host files");
  const secrets = new pulumi.Config("standort");

  const providers: Record<string, pulumi.ProviderResource> = {};
  let providerApiToken: pulumi.Output<string> | undefined =
    config.providerApiToken !== undefined ? secrets.requireSecret("providerApiToken") : undefined;
  const setup = stackSetupFor(model, config, secrets, missing);
  Object.assign(providers, setup.providers);
  providerApiToken ??= setup.providerApiToken;
  // A Kubernetes site's first run forms the cluster (its nodes' files): what runs inside it (the workloads, the backup
  // CronJobs) waits until standort:kubeconfig holds the new cluster's admin.conf, and the run says so.
  const clusterPending = model.virtualization.runtime === "kubernetes" && config.kubeconfig === undefined;
  if (clusterPending)
    void pulumi.log.warn(
      `${model.name}: standort:kubeconfig is not set: this run forms the cluster only; set it from the first virtualization host's /etc/kubernetes/admin.conf (pulumi config set --secret standort:kubeconfig) and run again for the workloads and the backup CronJobs`,
    );
  // A takeover that must move an address through the provider fails at run time without these: refuse now.
  const moves = model.pairs.map((p) => failoverMove(model, p.role));
  const adapter = adapterOf(model);
  if (providerApiToken === undefined && moves.some((m) => m.kind === "failover-ip")) {
    throw missing("providerApiToken", `for ${model.name}: its pairs move ${adapter.id} failover IPs through the provider's API`);
  }
  const absent = requiredProviderEnv(model).filter((key) => !config.providerEnv?.[key]);
  if (absent.length > 0) {
    const why = absent.includes("FAILOVER_MOVE_COMMAND")
      ? `${model.name}'s pairs move addresses, and ${adapter.id} has no API the library drives`
      : `${model.name}'s pairs move ${adapter.id} failover IPs through the provider's API, which needs these ids`;
    throw new InputError(absent.map((key) => `${stackFile}: standort:providerEnv: ${key} is required: ${why}`));
  }

  const services = siteServices(footprint, sites, model.name);
  const jobs = services.flatMap((s) => s.jobs);
  // Every secret the site's instances read must be in the configuration: a container started without it fails later.
  const unset = workloadInstances(footprint, services).flatMap((i) =>
    serviceSecretNames(i.workload)
      .filter((name) => config.serviceSecrets?.[i.service]?.[name] === undefined)
      .map((name) => `${i.service}.${name}`),
  );
  // A value for a service or secret the footprint does not know is a typo that would leave the real one unset.
  const known = new Map(footprint.services.map((s) => [s.name, new Set(serviceSecretNames(s.workload))]));
  const unknown = Object.entries(config.serviceSecrets ?? {}).flatMap(([service, values]) =>
    !known.has(service)
      ? [`${service} is not a service of the footprint`]
      : Object.keys(values)
          .filter((name) => !known.get(service)!.has(name))
          .map((name) => `${service}.${name} is not a secret ${service}'s containers read`),
  );
  if (unknown.length > 0) throw new InputError(unknown.map((u) => `${stackFile}: standort:serviceSecrets: ${u}`));
  if (unset.length > 0)
    throw new InputError([
      `${stackFile}: standort:serviceSecrets: ${[...new Set(unset)].join(", ")} must be set: ${model.name} runs these services (pulumi config set --secret standort:serviceSecrets '{"<service>": {"<secret>": "…"}}')`,
    ]);
  if (!config.alerting)
    throw new InputError([
      `${stackFile}: standort:alerting: must be set: the site's Alertmanager needs a receiver (pulumi config set --secret standort:alerting '{"kind":"webhook","url":"https://…"}')`,
    ]);
  const tunnels = siteTunnels(footprint, sites, model.name);
  // Every job of the footprint: what reaches this site (copies, backups into its stores) decides what its hosts accept.
  const allJobs = planJobs(footprint, sites);
  const credentialsPlan = planCredentials(sites, allJobs);
  // One StackReference per peer, for the tunnels and the credentials alike.
  const tunnelPeerNames = [...new Set(tunnels.flatMap((t) => t.ends.map((e) => e.site)))].filter((s) => s !== model.name);
  const peerNames = [...new Set([...tunnelPeerNames, ...credentialPeers(credentialsPlan, model.name)])].sort();
  const references = Object.fromEntries(
    peerNames.map((peer) => [peer, new pulumi.StackReference(`peer-${peer}`, { name: `${config.stackPrefix}/${peer}` })]),
  );
  // Only the outputs named in PEER_OUTPUTS are read from a peer: the rollout compares exactly these.
  const read = (reference: pulumi.StackReference, output: PeerOutput) => reference.getOutput(output);
  // Each peer's published keys and endpoint, read from its own stack.
  const peers: Record<string, TunnelPeerOutputs> = {};
  for (const peer of tunnelPeerNames.sort()) {
    const reference = references[peer];
    const wireguard = read(reference, "wireguard") as pulumi.Output<
      { publicKeys?: Record<string, string>; presharedKeys?: Record<string, string> } | undefined
    >;
    peers[peer] = {
      publicKeys: wireguard.apply((w) => w?.publicKeys),
      presharedKeys: wireguard.apply((w) => w?.presharedKeys),
      endpoint: read(reference, "tunnelEndpoint") as pulumi.Output<string | undefined>,
    };
  }
  // The job credentials this stack generates, and the files and Secrets that carry them (validated peer outputs).
  const credentials = new ReplicationCredentials(`${model.name}-credentials`, {
    model,
    sites,
    jobs: allJobs,
    peers: Object.fromEntries(peerNames.map((peer) => [peer, read(references[peer], "credentials")])),
  });
  const hostFiles: Record<string, Array<RenderedFile | DeliverableFile>> = {};
  // The services' secret env files: rendered with a marker per value, then filled from the validated configuration
  // (a secret: the engine holds the key as one).
  const serviceSecrets = pulumi.secret(config.serviceSecrets ?? {});
  const workloads = Object.entries(
    workloadHostFiles(model, footprint, services, (service, name) => `@@standort-secret ${service} ${name}@@`),
  ).map(
    ([host, files]) =>
      [
        host,
        files.map((f): RenderedFile | DeliverableFile =>
          f.secret
            ? {
                ...f,
                content: serviceSecrets.apply((values) =>
                  f.content.replace(
                    /@@standort-secret ([a-z0-9-]+) ([a-z0-9-]+)@@/g,
                    (_m, service: string, name: string) => values[service][name],
                  ),
                ),
              }
            : f,
        ),
      ] as const,
  );
  // Kubernetes sites: the cluster's bootstrap secrets (token, certificate key, CA), generated here, and each
  // virtualization host's kubeadm files, bootstrap unit and static pods (lib/kubernetes).
  const cluster = model.virtualization.runtime === "kubernetes" ? new ClusterCredentials(`${model.name}-kubernetes`, { model }) : undefined;
  const clusterFiles = cluster ? Object.entries(kubernetesDeliverables(model, sites, cluster.values)) : [];
  // The name server on the proxies serves every site's address. A Hetzner Cloud site's floating IP is not in its
  // site file: a peer's comes from its stack (`proxyAddress`), this site's once its floating IP exists (below).
  // Resolved from the site's routed prefix once it exists (an unknown in a preview stays unknown, never hangs).
  const [ownAddress, resolveOwnAddress] = pulumi.deferredOutput<string | undefined>();
  const unfixed = sites.filter((s) => publicProxyAddress(s) === undefined).map((s) => s.name);
  const unfixedAddresses = Object.fromEntries(
    unfixed.map((name) => [
      name,
      name === model.name
        ? ownAddress
        : (read(
            references[name] ?? new pulumi.StackReference(`peer-${name}`, { name: `${config.stackPrefix}/${name}` }),
            "proxyAddress",
          ) as pulumi.Output<string | undefined>),
    ]),
  );
  const addresses = pulumi.all(unfixedAddresses);
  // Rendered once the addresses are known (every proxy gets the same files); the file list itself does not depend on them.
  const knownFiles = addresses.apply((known) =>
    nameServerHostFiles(
      model,
      footprint,
      sites,
      Object.fromEntries(Object.entries(known).filter((e): e is [string, string] => typeof e[1] === "string")),
    ),
  );
  const nameServer = Object.entries(nameServerHostFiles(model, footprint, sites)).map(
    ([host, files]) =>
      [
        host,
        files.map((f): DeliverableFile => ({
          ...f,
          content: knownFiles.apply((rendered) => rendered[host].find((x) => x.path === f.path)!.content),
        })),
      ] as const,
  );
  for (const [host, files] of [
    ...Object.entries(footprintHostFiles(model, jobs)),
    ...workloads,
    ...Object.entries(credentials.files),
    ...clusterFiles,
    ...nameServer,
    ...Object.entries(monitoringHostFiles(model, monitoringPlan(model, footprint, sites, jobs), config.alerting)),
  ]) {
    hostFiles[host] = [...(hostFiles[host] ?? []), ...files];
  }

  const site = new Site(
    model.name,
    {
      model,
      partners,
      sites,
      sshPublicKey: config.sshPublicKey,
      services: proxiedServices(services),
      delivery: { privateKey: secrets.requireSecret("sshPrivateKey"), providerApiToken, providerEnv: config.providerEnv },
      hostFiles,
      tunnels: { tunnels, peers },
    },
    { providers },
  );
  resolveOwnAddress(site.prefix.addresses.apply((a) => a.proxy?.address ?? undefined));
  if (model.virtualization.runtime === "kubernetes" && !clusterPending) {
    // The services as Deployments behind the two ingress classes, plus the CNI and the ingress controllers.
    const provider = new kubernetes.Provider(
      `${model.name}-kubernetes-provider`,
      { kubeconfig: pulumi.secret(secrets.requireSecret("kubeconfig")) },
      { parent: site },
    );
    new Workloads(
      `${model.name}-workloads`,
      {
        model,
        services,
        footprint,
        serviceSecrets,
        provider,
      },
      { parent: site },
    );
  }
  if (jobRunner(model, "backup") === "kubernetes" && !clusterPending) {
    new Replication(
      `${model.name}-replication`,
      {
        kubeconfig: secrets.requireSecret("kubeconfig"),
        jobs,
        secrets: { names: credentials.secretNames, data: credentials.kubernetesSecrets },
      },
      { parent: site },
    );
  }

  return {
    ...siteOutputs(site),
    services: Object.fromEntries(
      services.map((s) => [s.service, { role: s.role, names: s.names, ...(s.migrationStep ? { migrationStep: s.migrationStep } : {}) }]),
    ),
    wireguard: { publicKeys: site.tunnels?.publicKeys ?? {}, presharedKeys: site.tunnels?.presharedKeys ?? pulumi.secret({}) },
    // What the peers' stacks read (ReplicationCredentials): public keys in clear, the passwords their hosts need as a secret.
    credentials: {
      publicKeys: credentials.publicKeys,
      secrets: credentials.publishedSecrets,
      certificates: credentials.publishedCertificates,
    },
    // A Kubernetes site whose cluster resources wait for standort:kubeconfig (its first run).
    ...(clusterPending ? { clusterPending: "set standort:kubeconfig from the cluster's admin.conf and run again" } : {}),
    tunnelEndpoint: site.prefix.addresses.apply((a) => a.nat?.address ?? null),
    // What the other sites' name servers answer for this site's names.
    proxyAddress: site.prefix.addresses.apply((a) => a.proxy?.address ?? null),
    bgpSessionPasswords: pulumi.secret(
      pulumi.all(Object.fromEntries(Object.entries(site.bgpPasswords).map(([peer, p]) => [peer, p.result]))),
    ),
  };
}
