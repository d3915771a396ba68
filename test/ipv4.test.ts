import test from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  blockSize,
  carveFirstFit,
  cidr,
  containsCidr,
  formatAddress,
  formatCidr,
  hostAddress,
  lastAddress,
  overlaps,
  parseAddress,
  parseCidr,
  nonUnicastKind,
  reservedRangeOf,
  subnets,
  usableRange,
} from "../lib/net/ipv4";

const address = fc.integer({ min: 0, max: 2 ** 32 - 1 });

test("parseAddress and formatAddress round-trip every address", () => {
  fc.assert(fc.property(address, (a) => parseAddress(formatAddress(a)) === a));
});

test("parseAddress rejects malformed text", () => {
  for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "", "1.2.3.-1"]) {
    assert.equal(parseAddress(bad), undefined, bad);
  }
});

test("parseCidr reports host bits instead of silently masking them", () => {
  assert.deepEqual(parseCidr("198.18.5.0/23"), { network: parseAddress("198.18.4.0"), length: 23, aligned: false });
  assert.deepEqual(parseCidr("198.18.4.0/23"), { network: parseAddress("198.18.4.0"), length: 23, aligned: true });
  assert.equal(parseCidr("198.18.4.0/33"), undefined);
  assert.equal(parseCidr("198.18.4.0"), undefined);
});

test("overlap is symmetric and agrees with a brute-force check on small prefixes", () => {
  const small = fc
    .record({ offset: fc.integer({ min: 0, max: 255 }), length: fc.integer({ min: 24, max: 32 }) })
    .map(({ offset, length }) => {
      const size = blockSize(length);
      return { network: parseAddress("10.0.0.0")! + Math.floor(offset / size) * size, length };
    });
  fc.assert(
    fc.property(small, small, (a, b) => {
      let shared = false;
      for (let x = a.network; x <= lastAddress(a); x++) if (x >= b.network && x <= lastAddress(b)) shared = true;
      return overlaps(a, b) === shared && overlaps(b, a) === shared;
    }),
  );
});

test("hostAddress stays inside the usable range", () => {
  fc.assert(
    fc.property(fc.integer({ min: 16, max: 30 }), fc.integer({ min: 1, max: 2 ** 16 }), (length, n) => {
      const c = cidr(`10.0.0.0/${length}`);
      const range = usableRange(c);
      if (n > range.count) return assert.throws(() => hostAddress(c, n)) === undefined;
      const a = hostAddress(c, n);
      return a >= range.first && a <= range.last;
    }),
  );
});

test("subnets tile the parent exactly", () => {
  const parts = subnets(cidr("198.18.4.0/23"), 25).map(formatCidr);
  assert.deepEqual(parts, ["198.18.4.0/25", "198.18.4.128/25", "198.18.5.0/25", "198.18.5.128/25"]);
});

const lengths = fc.array(fc.integer({ min: 20, max: 30 }), { maxLength: 24 });

test("carveFirstFit: every placed prefix is aligned, inside the supernet and disjoint from the others", () => {
  const supernet = cidr("10.20.0.0/16");
  fc.assert(
    fc.property(lengths, (ls) => {
      const placed = carveFirstFit(supernet, ls).filter((c) => c !== undefined);
      placed.forEach((c, i) => {
        assert.equal(c.network % blockSize(c.length), 0);
        assert.ok(containsCidr(supernet, c));
        placed.slice(i + 1).forEach((d) => assert.ok(!overlaps(c, d), `${formatCidr(c)} overlaps ${formatCidr(d)}`));
      });
    }),
  );
});

test("carveFirstFit: appending a request never moves an earlier one (no renumbering)", () => {
  const supernet = cidr("10.20.0.0/16");
  fc.assert(
    fc.property(lengths, lengths, (first, more) => {
      const before = carveFirstFit(supernet, first);
      const after = carveFirstFit(supernet, [...first, ...more]);
      assert.deepEqual(after.slice(0, first.length), before);
    }),
  );
});

test("carveFirstFit: a request is refused only when no aligned gap is left", () => {
  const supernet = cidr("10.20.0.0/22");
  const result = carveFirstFit(supernet, [23, 24, 24, 24]);
  assert.deepEqual(
    result.map((c) => (c ? formatCidr(c) : "none")),
    ["10.20.0.0/23", "10.20.2.0/24", "10.20.3.0/24", "none"],
  );
  // Fills the gap a larger, aligned block left behind.
  assert.deepEqual(
    carveFirstFit(cidr("10.0.0.0/16"), [24, 22, 24]).map((c) => formatCidr(c!)),
    ["10.0.0.0/24", "10.0.4.0/22", "10.0.1.0/24"],
  );
});

test("reservedRangeOf names private, loopback and multicast but allows the benchmarking range", () => {
  assert.equal(reservedRangeOf(cidr("10.1.0.0/23")), "private (RFC 1918)");
  assert.equal(reservedRangeOf(cidr("127.0.0.0/23")), "loopback");
  assert.equal(reservedRangeOf(cidr("224.0.0.0/23")), "multicast");
  assert.equal(reservedRangeOf(cidr("198.18.4.0/23")), undefined);
});

test("nonUnicastKind names every address that names no single host, and nothing else", () => {
  assert.equal(nonUnicastKind(parseAddress("0.0.0.0")!), "the unspecified address");
  assert.equal(nonUnicastKind(parseAddress("255.255.255.255")!), "the limited broadcast address");
  assert.equal(nonUnicastKind(parseAddress("127.1.2.3")!), "a loopback address");
  assert.equal(nonUnicastKind(parseAddress("239.255.255.250")!), "a multicast address");
  assert.equal(nonUnicastKind(parseAddress("250.0.0.1")!), "in the reserved range 240.0.0.0/4 (former class E)");
  for (const ok of ["10.0.0.1", "198.18.4.1", "100.64.0.1", "192.168.255.255", "1.0.0.0"])
    assert.equal(nonUnicastKind(parseAddress(ok)!), undefined, ok);
});
