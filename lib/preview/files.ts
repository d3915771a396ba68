/**
 * Every file the stack of one location would install, per host, rendered with
 * placeholder secrets: what `npm run plan -- <location> --files <dir>` writes
 * so an engineer can read exactly what will land on each host. The same
 * renderers and footprint mapping the stack uses; only the secrets differ.
 */
import { SiteModel } from "../model/model";
import { Footprint } from "../footprint/schema";
import { siteServices } from "../footprint/services";
import { siteTunnels, tunnelPeers } from "../footprint/wireguard";
import { footprintHostFiles, nameServerHostFiles, proxiedServices, workloadHostFiles } from "../footprint/site-files";
import { serviceSecretPlaceholder } from "../footprint/workloads";
import { planJobs } from "../footprint/jobs";
import { derivedCredentialValues, placeholderCredentialValues, planCredentials, renderCredentialFiles } from "../footprint/credentials";
import { PLACEHOLDER_SSH_KEY, placeholderSecrets, renderHostFiles } from "../render";
import { HostFiles, ProxiedService, RenderOptions, RenderedFile, TunnelPeer } from "../render/types";
import { kubernetesHostFiles, placeholderBootstrapValues } from "../kubernetes";
import { monitoringHostFiles } from "../monitoring/host-files";
import { monitoringPlan } from "../monitoring/site-plan";
import { OFFLINE_ALERTING } from "./run-stack";

/**
 * The render options a site's stack passes its renderers (the same for the
 * plan, the stack and the twin): every site model, the services the proxies
 * route, the tunnel peers and the stack's non-secret provider environment.
 */
export function siteRenderOptions(
  model: SiteModel,
  sites: ReadonlyArray<SiteModel>,
  footprint: Footprint,
  providerEnv?: Readonly<Record<string, string>>,
): RenderOptions & { services: ReadonlyArray<ProxiedService>; tunnelPeers: ReadonlyArray<TunnelPeer> } {
  const services = siteServices(footprint, sites, model.name);
  return {
    sites,
    services: proxiedServices(services),
    sshAuthorizedKeys: [PLACEHOLDER_SSH_KEY],
    tunnelPeers: tunnelPeers(siteTunnels(footprint, sites, model.name), model.name),
    ...(providerEnv ? { providerEnv } : {}),
  };
}

/**
 * Every host's files, as the stack of `model` installs them, with placeholder
 * secrets. `providerEnv` is the stack configuration's `standort:providerEnv`
 * (the stack passes it to the failover scripts), so the files are the stack's.
 */
export function planHostFiles(
  model: SiteModel,
  sites: ReadonlyArray<SiteModel>,
  footprint: Footprint,
  providerEnv?: Readonly<Record<string, string>>,
  /**
   * `twin.derivedCredentials`: render the job credentials with working values derived from this seed instead of
   * placeholders (`derivedCredentialValues`), the same at every site: for the pair twin, never deployed.
   */
  twin: { readonly derivedCredentials?: string; readonly proxyAddresses?: Readonly<Record<string, string>> } = {},
): HostFiles[] {
  const services = siteServices(footprint, sites, model.name);
  const extra = footprintHostFiles(
    model,
    services.flatMap((s) => s.jobs),
  );
  // Tunnel configurations with placeholders that name the secret each key comes from.
  const planned = siteTunnels(footprint, sites, model.name);
  const tunnels: RenderedFile[] = planned.map((t) => ({
    path: `/etc/wireguard/${t.name}.conf`,
    content: t.configs[model.name],
    mode: "0600",
    secret: true,
    delivery: "ssh",
  }));
  // Job credentials (keys, known_hosts, authorized_keys, passwords) with placeholders that name each secret.
  const jobs = planJobs(footprint, sites);
  const credentialPlan = planCredentials(sites, jobs);
  const values =
    twin.derivedCredentials === undefined
      ? placeholderCredentialValues(credentialPlan)
      : derivedCredentialValues(credentialPlan, twin.derivedCredentials);
  const credentials = renderCredentialFiles(model, sites, jobs, values).hostFiles;
  const options = siteRenderOptions(model, sites, footprint, providerEnv);
  // Service secrets: placeholders naming their stack configuration key; the twin's derived ones are plain words.
  const workloads = workloadHostFiles(model, footprint, services, (service, secret) =>
    twin.derivedCredentials === undefined ? serviceSecretPlaceholder(service, secret) : `twin-${service}-${secret}`,
  );
  // Kubernetes sites: kubeadm files, bootstrap unit, static pods, with a working placeholder token, key and CA.
  const cluster = kubernetesHostFiles(model, sites, placeholderBootstrapValues(model));
  // The name server on the proxies; a Hetzner Cloud site's floating IP is known once its stack ran (`addresses`).
  const dns = nameServerHostFiles(model, footprint, sites, twin.proxyAddresses ?? {});
  // The monitoring, with a placeholder receiver (the stack's standort:alerting is a secret the plan cannot read).
  const monitoring = monitoringHostFiles(
    model,
    monitoringPlan(
      model,
      footprint,
      sites,
      services.flatMap((s) => s.jobs),
    ),
    OFFLINE_ALERTING,
  );
  return model.hosts.map((host) => ({
    host: host.name,
    files: [
      ...renderHostFiles(model, host.name, placeholderSecrets(model), options),
      ...(extra[host.name] ?? []),
      ...(workloads[host.name] ?? []),
      ...(credentials[host.name] ?? []),
      ...(cluster[host.name] ?? []),
      ...(dns[host.name] ?? []),
      ...(monitoring[host.name] ?? []),
      ...(host.role === "firewall" ? tunnels : []),
    ],
  }));
}
