/**
 * Provider limits a site file must respect, as named constants with their
 * sources. Validation (`validate.ts`) refuses a site that breaks one before
 * anything is planned, naming the limit; the facts are collected in
 * `../shared/PROVIDERS.md`.
 */

/**
 * Subnets one Hetzner Cloud network holds at most. Every segment of a Hetzner
 * Cloud site is one cloud subnet of the site's network (`components/provisioning`),
 * so a site has at most this many segments. The API refuses the 51st with
 * `subnet limit reached (resource_limit_exceeded)`.
 * Source: Hetzner Docs, Networks FAQ, "Are there any limits on how Networks can be used?"
 * https://docs.hetzner.com/cloud/networks/faq/#are-there-any-limits-on-how-networks-can-be-used
 */
export const HCLOUD_SUBNETS_PER_NETWORK = 50;

/**
 * The gateway of every Hetzner Cloud server's public interface (an on-link
 * host route the image sets up); a private address equal to it would be
 * unreachable from the servers, so the address plan keeps it out of every
 * segment (`providerReserved`). Hetzner refuses it as a network route's
 * gateway too. Source: `../shared/PROVIDERS.md` (Hetzner Cloud), and the
 * same constant in `components/provisioning` (which should import this one).
 */
export const HCLOUD_PUBLIC_GATEWAY = "172.31.1.1";
