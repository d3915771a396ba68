/**
 * Types shared by every renderer: the rendered file, the secrets and the
 * options a render takes. Pure data; no Pulumi, no I/O.
 */
import type { SiteModel } from "../model/model";

/** Placeholder in a check command that stands for the file to check. */
export const FILE_PLACEHOLDER = "{file}";

/**
 * One file for one host, with everything delivery needs to put it in place
 * safely: how the daemon checks it, how to make the daemon pick it up, and how
 * to tell that the daemon still works afterwards.
 */
export interface RenderedFile {
  /** Absolute target path on the host. */
  readonly path: string;
  /** File bytes (UTF-8 text, always ending in a newline). */
  readonly content: string;
  /** Octal permission bits, for example `"0644"`. */
  readonly mode: string;
  /** `user:group` owning the file. @default "root:root" */
  readonly owner?: string;
  /** True when `content` carries a secret: delivery must wrap it in `pulumi.secret` and never log it. */
  readonly secret: boolean;
  /**
   * `ssh`: shipped by the delivery component (stage, check, swap, reload, health check).
   * `provision`: handed to the provisioning API once (cloud-init user-data), never shipped over SSH.
   */
  readonly delivery: "ssh" | "provision";
  /** The daemon's own config test; `{file}` stands for the staged file. Absent when the daemon has none. */
  readonly check?: { readonly command: ReadonlyArray<string> };
  /** Makes the running daemon pick up the file (argv). */
  readonly reload?: ReadonlyArray<string>;
  /** Exits 0 when the daemon still works with the new file (argv); a failure rolls the file back. */
  readonly healthCheck?: ReadonlyArray<string>;
  /**
   * Seconds within which a second, fresh SSH connection must confirm the
   * change, or the host rolls it back by itself. Set for files that can cut
   * off the connection delivery arrives on (the packet filter).
   */
  readonly confirmWithinSeconds?: number;
  /**
   * Run on the host before the file is removed, when the file is no longer
   * wanted there (a job moved away, a tunnel closed): stops what the file
   * started. Failures are logged, not fatal: the file goes either way.
   * @default nothing: the file is only removed
   */
  readonly remove?: ReadonlyArray<string>;
  /**
   * Run on the host once the file is gone (removed, or a first install
   * rolled back): returns the daemon to its state without the file, for
   * example deletes the nftables tables it defined.
   * @default nothing (unit files under /etc/systemd/system get `systemctl daemon-reload` from delivery)
   */
  readonly absent?: ReadonlyArray<string>;
}

/**
 * A plain file delivered over SSH (0644, no secret), with what sets it apart
 * (`mode`, `check`, `reload`, …) in `extra`: the shape most renderers return.
 */
export function sshFile(path: string, content: string, extra: Partial<RenderedFile> = {}): RenderedFile {
  return { path, content, mode: "0644", secret: false, delivery: "ssh", ...extra };
}

/** The files of one host, in delivery order. */
export interface HostFiles {
  readonly host: string;
  readonly files: ReadonlyArray<RenderedFile>;
}

/**
 * Secrets as plain strings. Renderers never generate secrets; the stack
 * generates them (random provider) and passes the resolved values in.
 */
export interface RenderSecrets {
  /**
   * The fence keys of each pair member, by host name: its fence sshd's host
   * key (the peer pins it in known_hosts) and its client key (the peer's fence
   * sshd authorises it, for power-off only). Ed25519 in OpenSSH's formats, as
   * `tls.PrivateKey` generates them. VRRP carries no secret: VRRPv3 has no
   * authentication (RFC 5798 §5.2), so nftables admits adverts from the peer only.
   */
  readonly fence: Readonly<Record<string, FenceKeys>>;
  /** BGP session password per peer name; only for own-prefix sites routed by BGP. */
  readonly bgp?: Readonly<Record<string, string>>;
  /** Provider API token used by the failover script (power-off fencing, failover IP moves). */
  readonly providerApiToken?: string;
}

/** A pair member's two fence keys (see `RenderSecrets.fence`). */
export interface FenceKeys {
  /** The host key of the member's fence sshd: `-----BEGIN OPENSSH PRIVATE KEY-----` … */
  readonly hostKey: string;
  /** Its public half, `ssh-ed25519 AAAA…`. */
  readonly hostKeyPublic: string;
  /** The key the member fences its peer with (private, OpenSSH format). */
  readonly clientKey: string;
  /** Its public half, `ssh-ed25519 AAAA…`. */
  readonly clientKeyPublic: string;
}

/** One end of a site-to-site tunnel, seen from this site. */
export interface TunnelPeer {
  /** The peer site. */
  readonly site: string;
  /** The tunnel (interface) name, for example `wg-fkb-vie`. */
  readonly tunnel: string;
  /** The UDP port this site's firewall listens on for the peer. */
  readonly listenPort: number;
  /** The peer's address where the site files know it; absent: any source may knock (WireGuard drops unknown keys). */
  readonly endpoint?: string;
}

/** A proxied service: TLS for `hostnames` is passed through to `port` on every virtualization host. */
export interface ProxiedService {
  /** Stable name (lower-case letters, digits, dashes); becomes the HAProxy backend name. */
  readonly name: string;
  /** SNI host names routed to this service; an empty list makes it the default backend. */
  readonly hostnames: ReadonlyArray<string>;
  /** TCP port on the virtualization hosts' app addresses. */
  readonly port: number;
}

/** Non-secret inputs beyond the model. Every field has a default. */
export interface RenderOptions {
  /**
   * Every site model (for partner supernets in the zone policy). Required for
   * firewall and storage hosts: without it the partner's replication traffic would be
   * silently dropped, so the renderer refuses instead.
   */
  readonly sites?: ReadonlyArray<SiteModel>;
  /** Services the proxy pair routes. @default one `platform` service on port 8080 */
  readonly services?: ReadonlyArray<ProxiedService>;
  /**
   * The site-to-site tunnels the firewall pair terminates: each peer's traffic
   * is allowed like a partner's, and the tunnel's UDP port is open to the peer.
   * @default none: only the partner named in the site file
   */
  readonly tunnelPeers?: ReadonlyArray<TunnelPeer>;
  /** SSH public keys authorised for root on API-provisioned hosts (cloud-init). */
  readonly sshAuthorizedKeys?: ReadonlyArray<string>;
  /** The NIC that carries the segment VLANs on pre-provisioned hosts. @default "eth1" */
  readonly internalNic?: string;
  /** The NIC that carries the provider's public address (failover IPs are added here). @default "eth0" */
  readonly uplinkNic?: string;
  /**
   * Extra non-secret environment for the failover script (for example
   * `IONOS_DATACENTER_ID`), written next to the API token in
   * `/etc/standort/provider.env`.
   */
  readonly providerEnv?: Readonly<Record<string, string>>;
}

/** The default proxied service until the footprint issue adds per-service backends. */
export const DEFAULT_SERVICES: ReadonlyArray<ProxiedService> = [{ name: "platform", hostnames: [], port: 8080 }];
