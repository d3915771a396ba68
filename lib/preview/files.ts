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
import { footprintHostFiles, proxiedServices } from "../footprint/site-files";
import { PLACEHOLDER_SSH_KEY, placeholderSecrets, renderHostFiles } from "../render";
import { HostFiles, RenderedFile } from "../render/types";

export function planHostFiles(model: SiteModel, sites: ReadonlyArray<SiteModel>, footprint: Footprint): HostFiles[] {
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
  const options = {
    sites,
    services: proxiedServices(services),
    sshAuthorizedKeys: [PLACEHOLDER_SSH_KEY],
    tunnelPeers: tunnelPeers(planned, model.name),
  };
  return model.hosts.map((host) => ({
    host: host.name,
    files: [
      ...renderHostFiles(model, host.name, placeholderSecrets(model), options),
      ...(extra[host.name] ?? []),
      ...(host.role === "firewall" ? tunnels : []),
    ],
  }));
}
