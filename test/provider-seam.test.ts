/**
 * The provider seam holds: no code outside the adapters (`lib/providers/`)
 * branches on a site's provider or imports a provider SDK, and the seam's
 * interfaces carry no provider types. The twin's stand-ins of provider APIs
 * (`scripts/twin/provider*.ts`) are per provider by nature and are exempt.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { ADAPTERS, adapterOf } from "../lib/providers/registry";
import { loadFootprint } from "../lib/footprint/load";

const root = join(__dirname, "..");
const EXEMPT = [/^lib\/providers\//, /^scripts\/twin\/provider(-api)?\.ts$/];
/**
 * A branch on a site's provider (`model.provider.kind`, `.provider.name`) or a provider SDK import. The twin's
 * `world.provider` is its own network model (a provider LAN or a routed network, from the adapter), not the site's.
 */
const BRANCH = /(?<!\b(world|w))\.provider\.(kind|name)\b|from "@pulumi\/hcloud"|=== "(hcloud|hetzner-robot|preprovisioned|netcup|ionos)"/;

function sources(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return name === "node_modules" ? [] : sources(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

test("no code outside the provider adapters branches on the provider or imports a provider SDK", () => {
  const found = ["lib", "components", "stacks", "scripts"]
    .flatMap(sources)
    .filter((file) => !EXEMPT.some((e) => e.test(file)))
    .flatMap((file) =>
      readFileSync(join(root, file), "utf8")
        .split("\n")
        .map((line, i) => ({ line, at: `${relative(root, join(root, file))}:${i + 1}` }))
        .filter(({ line }) => BRANCH.test(line) && !/^\s*(\*|\/\/)/.test(line))
        .map(({ line, at }) => `${at}: ${line.trim()}`),
    );
  assert.deepEqual(found, []);
});

test("the seam's interfaces carry no provider SDK types", () => {
  for (const file of ["lib/providers/adapter.ts", "lib/providers/provisioning.ts", "lib/providers/registry.ts"]) {
    const text = readFileSync(join(root, file), "utf8");
    assert.doesNotMatch(text, /@pulumi\/hcloud|hcloud\.[A-Z]/, file);
  }
});

test("every committed site has an adapter, and the footprint spans at least two operators", () => {
  const { sites } = loadFootprint();
  const operators = new Set(sites.map((s) => adapterOf(s).operator));
  assert.ok(operators.size >= 2, [...operators].join(", "));
  for (const [key, adapter] of Object.entries(ADAPTERS)) assert.equal(adapter.id, key);
});
