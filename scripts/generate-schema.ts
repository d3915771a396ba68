/**
 * `npm run schema`: writes the JSON Schemas of site files and of the footprint
 * file, generated from the zod schemas, so editors autocomplete
 * and check `sites/*.yaml`. A test fails when the committed copy is stale.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { SITES_DIR } from "../lib/model/load";
import { SiteFileSchema } from "../lib/model/schema";
import { FootprintSchema } from "../lib/footprint/schema";
import { PoolsFileSchema } from "../lib/model/pools";
import { stableJson } from "../lib/preview/plan";

/** The JSON Schemas to generate, by file name under `sites/schema/`. */
export function jsonSchemas(): Record<string, string> {
  const schemas: Record<string, z.ZodType> = {
    "site.schema.json": SiteFileSchema,
    "footprint.schema.json": FootprintSchema,
    "pools.schema.json": PoolsFileSchema,
  };
  return Object.fromEntries(
    Object.entries(schemas).map(([file, schema]) => [
      file,
      // Input mode: fields with defaults are optional in the file, as they are to the parser.
      stableJson({ ...z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }), title: file.replace(".schema.json", "") }),
    ]),
  );
}

if (require.main === module) {
  const dir = join(SITES_DIR, "schema");
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(jsonSchemas())) {
    writeFileSync(join(dir, file), text);
    console.log(`wrote sites/schema/${file}`);
  }
}
