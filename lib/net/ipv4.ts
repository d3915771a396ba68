/**
 * IPv4 address arithmetic on unsigned 32-bit integers.
 *
 * Hand-written rather than pulled from a package: the library needs a dozen
 * operations on IPv4 only, they are easy to property-test, and keeping them
 * dependency-free lets renderers and the plan share one exact implementation.
 */

/** An IPv4 prefix: network address as an unsigned 32-bit integer and its length. */
export interface Cidr {
  readonly network: number;
  readonly length: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses dotted-quad notation; returns undefined when the text is not an IPv4 address. */
export function parseAddress(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** Formats an unsigned 32-bit integer as dotted-quad text. */
export function formatAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** Number of addresses in a prefix of the given length. */
export function blockSize(length: number): number {
  return 2 ** (32 - length);
}

/**
 * Parses `a.b.c.d/len`. Returns undefined when the text is malformed; a prefix
 * with host bits set is returned as parsed with `aligned: false` so that the
 * caller can name the problem precisely.
 */
export function parseCidr(text: string): (Cidr & { aligned: boolean }) | undefined {
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const address = parseAddress(match[1]);
  const length = Number(match[2]);
  if (address === undefined || length > 32) return undefined;
  const network = address - (address % blockSize(length));
  return { network, length, aligned: network === address };
}

/** Parses a prefix that the caller has already validated; throws on malformed input. */
export function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed || !parsed.aligned) throw new Error(`${text} is not an aligned IPv4 prefix`);
  return { network: parsed.network, length: parsed.length };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.network)}/${c.length}`;
}

/** Last address (broadcast) of a prefix. */
export function lastAddress(c: Cidr): number {
  return c.network + blockSize(c.length) - 1;
}

export function containsAddress(c: Cidr, address: number): boolean {
  return address >= c.network && address <= lastAddress(c);
}

/** True when `inner` lies wholly within `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.length >= outer.length && containsAddress(outer, inner.network);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network <= lastAddress(b) && b.network <= lastAddress(a);
}

/**
 * The n-th usable host address of a prefix (1-based: host 1 is the first
 * address after the network address). Throws when the prefix has no such host,
 * because a caller asking for it has a planning bug, not a user error.
 */
export function hostAddress(c: Cidr, n: number): number {
  const usable = c.length >= 31 ? blockSize(c.length) : blockSize(c.length) - 2;
  if (!Number.isInteger(n) || n < 1 || n > usable) {
    throw new Error(`${formatCidr(c)} has no host number ${n} (usable: ${usable})`);
  }
  return c.length >= 31 ? c.network + n - 1 : c.network + n;
}

/** Usable host addresses of a prefix (/31 and /32 count every address). */
export function usableRange(c: Cidr): { first: number; last: number; count: number } {
  if (c.length >= 31) return { first: c.network, last: lastAddress(c), count: blockSize(c.length) };
  return { first: c.network + 1, last: lastAddress(c) - 1, count: blockSize(c.length) - 2 };
}

/** Splits a prefix into consecutive sub-prefixes of `length`. */
export function subnets(c: Cidr, length: number): Cidr[] {
  if (length < c.length) throw new Error(`cannot split ${formatCidr(c)} into /${length}`);
  const count = 2 ** (length - c.length);
  return Array.from({ length: count }, (_, i) => ({ network: c.network + i * blockSize(length), length }));
}

/**
 * Ranges that must never be used as an operator's public prefix. The
 * benchmarking range 198.18.0.0/15 and the documentation ranges are *not*
 * listed: examples and tests deliberately use them.
 */
export const RESERVED_PUBLIC: ReadonlyArray<{ cidr: Cidr; name: string }> = [
  ["0.0.0.0/8", "this-network"],
  ["10.0.0.0/8", "private (RFC 1918)"],
  ["100.64.0.0/10", "shared address space (RFC 6598)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private (RFC 1918)"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.168.0.0/16", "private (RFC 1918)"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
].map(([text, name]) => ({ cidr: cidr(text), name }));

/**
 * Addresses that never name one host (RFC 6890, the IANA IPv4 special-purpose
 * registry), most specific first: no host, VIP, next hop, peer or failover IP
 * may be one of them.
 */
export const NON_UNICAST_RANGES: ReadonlyArray<{ cidr: Cidr; name: string; address: string }> = [
  ["0.0.0.0/32", "unspecified", "the unspecified address"],
  ["255.255.255.255/32", "limited broadcast", "the limited broadcast address"],
  ["0.0.0.0/8", "this network", "in the this-network range 0.0.0.0/8"],
  ["127.0.0.0/8", "loopback", "a loopback address"],
  ["169.254.0.0/16", "link-local", "a link-local address"],
  ["224.0.0.0/4", "multicast", "a multicast address"],
  ["240.0.0.0/4", "reserved, former class E", "in the reserved range 240.0.0.0/4 (former class E)"],
].map(([text, name, address]) => ({ cidr: cidr(text), name, address }));

/** What makes `address` unusable as a host address (`the unspecified address`, `a multicast address`, …), if anything. */
export function nonUnicastKind(address: number): string | undefined {
  return NON_UNICAST_RANGES.find((r) => containsAddress(r.cidr, address))?.address;
}

/** The non-unicast range a prefix touches, if any (a prefix of operator sources must lie outside all of them). */
export function nonUnicastRangeOf(c: Cidr): { cidr: Cidr; name: string } | undefined {
  return NON_UNICAST_RANGES.filter((r) => r.cidr.length < 32).find((r) => overlaps(r.cidr, c));
}

/** Private ranges an internal supernet must lie in (RFC 1918). */
export const PRIVATE_RANGES: ReadonlyArray<Cidr> = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map(cidr);

/** Returns the name of the reserved range a prefix touches, if any. */
export function reservedRangeOf(c: Cidr): string | undefined {
  return RESERVED_PUBLIC.find((r) => overlaps(r.cidr, c))?.name;
}

/**
 * First-fit carving: places each requested prefix length, in order, at the
 * lowest aligned position inside `within` that overlaps nothing placed before
 * (including `taken`). Appending a request never moves an earlier one, which is
 * what keeps existing segments from being renumbered when a site grows.
 * Returns undefined for a request that no longer fits.
 */
export function carveFirstFit(within: Cidr, lengths: ReadonlyArray<number>, taken: ReadonlyArray<Cidr> = []): Array<Cidr | undefined> {
  const placed: Cidr[] = [...taken];
  return lengths.map((length) => {
    if (length < within.length || length > 32) return undefined;
    const step = blockSize(length);
    for (let at = within.network; at + step - 1 <= lastAddress(within); at += step) {
      const candidate = { network: at, length };
      const clash = placed.find((p) => overlaps(p, candidate));
      if (!clash) {
        placed.push(candidate);
        return candidate;
      }
      // Jump to the first aligned position past the clashing block instead of
      // probing every step inside it (the loop adds `step` back).
      at = Math.ceil((lastAddress(clash) + 1) / step) * step - step;
    }
    return undefined;
  });
}
