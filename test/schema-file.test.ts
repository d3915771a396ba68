import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { jsonSchemas } from "../scripts/generate-schema";
import { SITES_DIR } from "../lib/model/load";
import { siteNamesIn } from "./helpers/sites";

test("the committed JSON Schemas match the zod schemas (run npm run schema after changing one)", () => {
  for (const [file, text] of Object.entries(jsonSchemas())) {
    assert.equal(readFileSync(join(SITES_DIR, "schema", file), "utf8"), text, `sites/schema/${file} is stale`);
  }
});

test("the JSON Schema closes every object, so editors flag unknown keys as the loader does", () => {
  const schema = JSON.parse(jsonSchemas()["site.schema.json"]);
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.properties.network.additionalProperties, false);
  assert.deepEqual(schema.required.sort(), ["code", "country", "management", "name", "network", "partner", "provider", "public"]);
});

test("every site file points editors at the schema", () => {
  for (const name of siteNamesIn()) {
    const first = readFileSync(join(SITES_DIR, `${name}.yaml`), "utf8").split("\n")[0];
    assert.equal(first, "# yaml-language-server: $schema=./schema/site.schema.json");
  }
});

test("editors show what a field means: the JSON Schema carries the descriptions", () => {
  const schema = JSON.parse(jsonSchemas()["site.schema.json"]);
  assert.equal(schema.properties.partner.description, "The site that replicates with this one and stands by for it.");
  assert.equal(
    schema.properties.network.properties.supernet.description,
    "Private supernet every segment of the site is carved from (RFC 1918, /16 to /20).",
  );
});
