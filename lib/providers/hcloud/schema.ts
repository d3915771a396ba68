/**
 * The provider part of a Hetzner Cloud site file (`provider: { kind: hcloud, … }`)
 * and Hetzner Cloud's facts that the library encodes, each with its source
 * (collected in `../shared/PROVIDERS.md`).
 */
import { z } from "zod";

/**
 * Subnets one Hetzner Cloud network holds at most. Every segment of a Hetzner
 * Cloud site is one cloud subnet of the site's network, so a site has at most
 * this many segments. The API refuses the 51st with
 * `subnet limit reached (resource_limit_exceeded)`.
 * Source: Hetzner Docs, Networks FAQ, "Are there any limits on how Networks can be used?"
 * https://docs.hetzner.com/cloud/networks/faq/#are-there-any-limits-on-how-networks-can-be-used
 */
export const HCLOUD_SUBNETS_PER_NETWORK = 50;

/**
 * The gateway of every Hetzner Cloud server's public interface (an on-link
 * host route the image sets up); a private address equal to it would be
 * unreachable from the servers, so the address plan keeps it out of every
 * segment. Hetzner refuses it as a network route's gateway too.
 * Source: `../shared/PROVIDERS.md` (Hetzner Cloud).
 */
export const HCLOUD_PUBLIC_GATEWAY = "172.31.1.1";

/** Names the private NIC of a Hetzner Cloud server can have (depends on the server type's PCI layout). */
export const HCLOUD_PRIVATE_NICS = ["ens10", "enp7s0"] as const;

/** MTU of a Hetzner Cloud private network (docs.hetzner.com/cloud/networks/faq: 1450). */
export const HCLOUD_PRIVATE_MTU = 1450;

/** The Hetzner Cloud API base the failover scripts call. */
export const HCLOUD_API = "https://api.hetzner.cloud/v1";

/** Hetzner Cloud network zone of each location (Networks FAQ). */
export const HCLOUD_NETWORK_ZONE: Readonly<Record<string, string>> = {
  fsn1: "eu-central",
  nbg1: "eu-central",
  hel1: "eu-central",
  ash: "us-east",
  hil: "us-west",
  sin: "ap-southeast",
};

/** Servers a Hetzner Cloud spread placement group holds at most. */
export const HCLOUD_SPREAD_GROUP_LIMIT = 10;

/** A Hetzner Cloud server type name (`cx32`, `cpx41`, `cax21`). */
const serverType = z.string().regex(/^[a-z]{2,5}[0-9]{1,3}$/, "must be a Hetzner Cloud server type name (for example cx32)");

export const hcloudProviderSchema = z.strictObject({
  kind: z.literal("hcloud"),
  /** Hetzner Cloud location (network zone is derived from it). */
  location: z.enum(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]).describe("Hetzner Cloud location (network zone is derived from it)."),
  /**
   * Server types per role.
   * @default firewall cx32, proxy cx32, virtualization cx52, storage cx42
   */
  serverTypes: z
    .strictObject({
      firewall: serverType.default("cx32"),
      proxy: serverType.default("cx32"),
      virtualization: serverType.default("cx52"),
      storage: serverType.default("cx42"),
    })
    .prefault({}),
  /** Image for every server. @default debian-12 */
  image: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "must be a Hetzner Cloud image name or id (for example debian-12)")
    .default("debian-12")
    .describe("Image for every server. Default: debian-12"),
});
