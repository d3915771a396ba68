/**
 * `npm run new-site -- <name> --provider <kind> --country <CC> --partner <site> [--region R] [--own-prefix] [--code C] [--dry-run] [--root DIR]`
 *
 * Adds a location: writes `sites/<name>.yaml` (the standard set of hosts,
 * placeholder addresses where the provider hands them over) and
 * `stacks/Pulumi.<name>.yaml`, takes the site's supernet (and own /23) from
 * the pools of `sites/pools.yaml` and records them in its ledger, makes the
 * partner stand by for the new site, then runs the new site's offline plan
 * (`npm run plan -- <name>`) and exits with its code. Every refused input is
 * one line naming the flag and the rule, exit 2, and nothing is written.
 * `--dry-run` prints what would be written and writes nothing.
 */
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { z } from "zod";
import { parseDocument, isSeq, isMap } from "yaml";
import { REPOSITORY_ROOT, readPools, readSiteDocuments } from "../lib/model/load";
import { readInputText } from "../lib/model/input-file";
import { COUNTRY_CODES } from "../lib/model/countries";
import { SiteFile, SiteFileSchema, shown, slug, text } from "../lib/model/schema";
import { InputError, SiteDocument, validateSites } from "../lib/model/validate";
import { LedgerEntry, POOLS_FILE_NAME, PoolsFile, allocate, ledgerOrder, parsePools } from "../lib/model/pools";
import { ProviderChoice, SiteScaffold, deriveCode, partnerEdit, providerChoices, siteFileText, stackFileText } from "../lib/model/scaffold";
import { requiredProviderEnv } from "../lib/render/keepalived";
import { failoverMove } from "../lib/render/failover-move";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";
import { main as planMain } from "./plan";

const COMMAND = "new-site";

/** CLI flags, validated like every other user input. Providers are the adapters' keys; what `--region` means is the adapter's. */
export const NewSiteFlagsSchema = z
  .strictObject({
    name: slug,
    provider: z.string(),
    country: z.enum(COUNTRY_CODES, {
      error: (i) => `${shown(i.input)} is not an ISO 3166-1 alpha-2 country code (lib/model/countries.ts)`,
    }),
    partner: slug,
    region: text.min(1).optional(),
    ownPrefix: z.boolean().default(false),
    code: z
      .string()
      .regex(/^[a-z]{3}$/, "must be three lower-case letters")
      .optional(),
    dryRun: z.boolean().default(false),
    /** The folder holding sites/ and stacks/. @default the repository */
    root: z.string().min(1).optional(),
  })
  .superRefine((flags, ctx) => {
    const choices = providerChoices();
    const choice = choices.find((c) => c.flag === flags.provider);
    if (!choice) {
      ctx.addIssue({
        code: "custom",
        path: ["provider"],
        message: `${shown(flags.provider)} is not a provider with an adapter (lib/providers/registry.ts: one of ${choices.map((c) => c.flag).join(", ")})`,
      });
      return;
    }
    const { label, region } = choice.adapter.scaffold;
    const oneOf = region.values.length > 0 ? `, one of ${region.values.join(", ")}` : "";
    if (flags.region === undefined) {
      if (region.required)
        ctx.addIssue({ code: "custom", path: ["region"], message: `is required for ${label}: its ${region.field}${oneOf}` });
    } else if (region.values.length > 0 && !region.values.includes(flags.region))
      ctx.addIssue({
        code: "custom",
        path: ["region"],
        message: `${shown(flags.region)} is not a ${label} ${region.field} (one of ${region.values.join(", ")})`,
      });
  });
export type NewSiteFlags = z.infer<typeof NewSiteFlagsSchema>;

const FLAG_OPTIONS = {
  provider: { type: "string" },
  country: { type: "string" },
  partner: { type: "string" },
  region: { type: "string" },
  "own-prefix": { type: "boolean" },
  code: { type: "string" },
  "dry-run": { type: "boolean" },
  root: { type: "string" },
} as const;

/** `ownPrefix` → `--own-prefix`; the positional `name` stays as it is. */
function flagName(key: string): string {
  return key in FLAG_OPTIONS || key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) in FLAG_OPTIONS
    ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    : key;
}

export function parseNewSiteFlags(argv: string[]): NewSiteFlags {
  try {
    return parseFlags(COMMAND, argv, FLAG_OPTIONS, NewSiteFlagsSchema, ["name"]);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    // The schema's paths are the camelCase keys: problems name the flag as it is typed.
    throw new InputError(
      error.problems.map((p) => p.replace(/^new-site: ([A-Za-z]+): /, (_m, key: string) => `${COMMAND}: ${flagName(key)}: `)),
    );
  }
}

/** Where a run reads and writes: `<root>/sites`, `<root>/stacks`, `<root>/stacks/plans`. */
interface Folders {
  readonly root: string;
  readonly sites: string;
  readonly stacks: string;
  readonly plans: string;
}

/** One file the command writes: the path, the text before (undefined for a new file) and after. */
interface Change {
  readonly path: string;
  readonly before?: string;
  readonly after: string;
}

export interface NewSitePlan {
  readonly changes: ReadonlyArray<Change>;
  readonly scaffold: SiteScaffold;
  readonly ledger: LedgerEntry;
  readonly partnerChange: "standbyFor" | "partner" | "none";
}

/** A parsed site file with its text. */
interface SiteOnDisk {
  readonly file: string;
  readonly path: string;
  readonly site: SiteFile;
}

/**
 * Everything a run would write, computed from the files alone (deterministic:
 * the same files give the same answer).
 * @throws InputError naming the flag (or the file) and the rule
 */
export function planNewSite(flags: NewSiteFlags, folders: Folders): NewSitePlan {
  const { name } = flags;
  const display = (path: string) => relative(folders.root, path);
  const read = readSiteDocuments(folders.sites);
  if (read.problems.length > 0) throw new InputError([...read.problems, `${COMMAND}: the site files have problems: fix them first`]);
  const pools = readPools(folders.sites);
  if (!pools.exists)
    throw new InputError([
      `${display(join(folders.sites, POOLS_FILE_NAME))}: (file): is missing: new-site takes the new site's space from its pools`,
    ]);
  if (!pools.pools) throw new InputError(pools.problems);

  const sites: SiteOnDisk[] = [];
  const unparsed: string[] = [];
  for (const doc of read.documents) {
    const parsed = SiteFileSchema.safeParse(doc.data);
    if (parsed.success) sites.push({ file: doc.file, path: join(folders.root, doc.file), site: parsed.data });
    else unparsed.push(doc.file);
  }
  if (unparsed.length > 0)
    throw new InputError(
      unparsed.map(
        (f) =>
          `${f}: (file): does not pass the site schema, so its space is unknown: fix it first (npm run plan -- <location> names the problems)`,
      ),
    );

  const problems: string[] = [];
  const siteFile = join(folders.sites, `${name}.yaml`);
  const stackFile = join(folders.stacks, `Pulumi.${name}.yaml`);
  if (read.siteNames.includes(name) || existsSync(siteFile))
    problems.push(`${COMMAND}: name: ${name} already has a site file (${display(siteFile)}): choose another name`);
  else if (existsSync(stackFile)) problems.push(`${COMMAND}: name: ${display(stackFile)} exists already: remove it or choose another name`);

  const partner = sites.find((s) => s.file.endsWith(`/${flags.partner}.yaml`));
  if (flags.partner === name) problems.push(`${COMMAND}: --partner: ${name} is the new site itself: name an existing site`);
  else if (!read.siteNames.includes(flags.partner))
    problems.push(`${COMMAND}: --partner: ${flags.partner} does not exist (known sites: ${[...read.siteNames].sort().join(", ")})`);

  const codes = new Map(sites.map((s) => [s.site.code, s.file]));
  let code = flags.code;
  if (code !== undefined && codes.has(code))
    problems.push(`${COMMAND}: --code: ${code} is already the code of ${codes.get(code)}: choose another`);
  if (code === undefined) {
    code = deriveCode(name, new Set(codes.keys()));
    if (code === undefined) problems.push(`${COMMAND}: --code: every code derived from ${name} is taken: give one with --code`);
  }

  const choice = providerChoices().find((c) => c.flag === flags.provider) as ProviderChoice;
  const { adapter } = choice;
  // Placeholder addresses stand in for what the provider hands over: hosts, declared failover IPs, an own prefix's next hop.
  const placeholders = adapter.hosts.kind === "handed-over" || adapter.failoverIps === "declared" || flags.ownPrefix;
  const allocation = allocate(
    pools.pools,
    sites.map((s) => ({ file: s.file, site: s.site })),
    { ownPrefix: flags.ownPrefix, placeholders },
    display(join(folders.sites, POOLS_FILE_NAME)),
  );
  problems.push(...allocation.problems.map((p) => (flags.ownPrefix && /: prefixes: /.test(p) ? `${COMMAND}: --own-prefix: ${p}` : p)));
  if (problems.length > 0 || partner === undefined) throw new InputError(problems);

  const scaffold: SiteScaffold = {
    name,
    code: code!,
    country: flags.country,
    provider: choice,
    region: flags.region,
    partner: flags.partner,
    supernet: allocation.supernet!,
    prefix: allocation.prefix,
    placeholders: allocation.placeholders,
    allowlist: partner.site.management.allowlist,
  };
  const siteText = siteFileText(scaffold);
  const newFile = display(siteFile);

  const partnerBefore = readText(partner.path, partner.file);
  let edit: ReturnType<typeof partnerEdit>;
  try {
    edit = partnerEdit(partnerBefore, name);
  } catch (error) {
    throw new InputError([`${COMMAND}: --partner: ${partner.file} cannot take ${name}: ${(error as Error).message}`]);
  }

  const ledger: LedgerEntry = { site: name, supernet: scaffold.supernet, ...(scaffold.prefix ? { prefix: scaffold.prefix } : {}) };
  const poolsPath = join(folders.sites, POOLS_FILE_NAME);
  const poolsBefore = readText(poolsPath, display(poolsPath));
  const poolsAfter = appendLedger(poolsBefore, ledger, pools.pools);

  // The new state validated as the plan will: the new site and the partner's change may add no problem.
  const docsAfter: SiteDocument[] = [
    ...read.documents.map((d) => (d.file === partner.file ? { file: d.file, data: parseDocument(edit.text).toJS() } : d)),
    { file: newFile, data: parseDocument(siteText).toJS() },
  ];
  const before = new Set(validateSites(read.documents, read.siteNames, read.age).problems);
  const age = ledgerOrder(parsePools(parseDocument(poolsAfter).toJS()).pools?.ledger ?? []);
  const after = validateSites(docsAfter, [...read.siteNames, name], age);
  const added = after.problems.filter((p) => !before.has(p));
  if (added.length > 0)
    throw new InputError(added.map((p) => asFlagProblem(p, newFile, partner.file, flags, adapter.scaffold.region.field)));

  const model = after.sites.find((s) => s.name === name)!;
  const movesFailoverIps = model.pairs.some((p) => failoverMove(model, p.role).kind === "failover-ip");
  const stackText = stackFileText(scaffold, requiredProviderEnv(model), movesFailoverIps);

  const changes: Change[] = [
    { path: siteFile, after: siteText },
    { path: stackFile, after: stackText },
    ...(edit.change === "none" ? [] : [{ path: partner.path, before: partnerBefore, after: edit.text }]),
    { path: poolsPath, before: poolsBefore, after: poolsAfter },
  ];
  return { changes, scaffold, ledger, partnerChange: edit.change };
}

/**
 * A problem validation finds in the new state, named by the flag that caused
 * it: `public.*` by `--own-prefix` where it was given, `provider.*` by
 * `--provider`/`--region`, `country`, `code`, `partner` by theirs.
 */
function asFlagProblem(problem: string, newFile: string, partnerFile: string, flags: NewSiteFlags, regionField: string): string {
  const prefix = `${newFile}: `;
  if (!problem.startsWith(prefix)) {
    if (problem.startsWith(`${partnerFile}: `)) return `${COMMAND}: --partner: ${problem}`;
    return `${COMMAND}: ${problem}`;
  }
  const rest = problem.slice(prefix.length);
  const path = rest.slice(0, rest.indexOf(": "));
  const flag = path.startsWith("public.")
    ? flags.ownPrefix
      ? "--own-prefix"
      : "--provider"
    : path === `provider.${regionField}`
      ? "--region"
      : path.startsWith("provider")
        ? "--provider"
        : ["country", "code", "partner"].includes(path)
          ? `--${path}`
          : "name";
  return `${COMMAND}: ${flag}: ${rest} (in ${newFile})`;
}

/** Reads a file the command edits, through the reader every input file goes through. */
function readText(path: string, display: string): string {
  const read = readInputText(path, display);
  if (read.text === undefined) throw new InputError(read.problems);
  return read.text;
}

/**
 * Appends one allocation to the ledger of the pools file's text: a line in
 * the entries' own style after the last one, the rest of the file byte for
 * byte. Checks that the result reads as the ledger with the entry appended.
 */
export function appendLedger(text: string, entry: LedgerEntry, pools: PoolsFile): string {
  const line = `{ site: ${entry.site}, supernet: ${entry.supernet}${entry.prefix ? `, prefix: ${entry.prefix}` : ""} }`;
  const doc = parseDocument(text);
  const node = isMap(doc.contents) ? doc.contents.get("ledger", true) : undefined;
  let result: string;
  if (isSeq(node) && node.items.length > 0 && !node.flow) {
    const last = node.items[node.items.length - 1] as { range?: [number, number, number] };
    const firstItem = node.items[0] as { range?: [number, number, number] };
    const itemLineStart = text.lastIndexOf("\n", firstItem.range![0] - 1) + 1;
    const indent = /^ */.exec(text.slice(itemLineStart))![0];
    const endOfLast = text.indexOf("\n", last.range![1] - 1);
    const at = endOfLast === -1 ? text.length : endOfLast + 1;
    const head = text.slice(0, at);
    result = `${head}${head.endsWith("\n") ? "" : "\n"}${indent}- ${line}\n${text.slice(at)}`;
  } else if (node === undefined) {
    result = `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}ledger:\n  - ${line}\n`;
  } else {
    // An empty or flow-style ledger: rewritten as a block list of its entries.
    const entries = [...pools.ledger, entry].map(
      (e) => `  - { site: ${e.site}, supernet: ${e.supernet}${e.prefix ? `, prefix: ${e.prefix}` : ""} }`,
    );
    const pair = (doc.contents as import("yaml").YAMLMap).items.find((p) => String((p.key as { value?: unknown }).value) === "ledger")!;
    const keyStart = (pair.key as { range: [number, number, number] }).range[0];
    const valueEnd = (pair.value as { range: [number, number, number] }).range[1];
    const lineStart = text.lastIndexOf("\n", keyStart - 1) + 1;
    const lineEndAt = text.indexOf("\n", valueEnd - 1);
    result = `${text.slice(0, lineStart)}ledger:\n${entries.join("\n")}\n${lineEndAt === -1 ? "" : text.slice(lineEndAt + 1)}`;
  }
  const check = parsePools(parseDocument(result).toJS());
  const want = [...pools.ledger, entry];
  if (!check.pools || JSON.stringify(check.pools.ledger) !== JSON.stringify(want))
    throw new Error("the ledger entry did not read back as appended");
  return result;
}

/** The lines a change replaces, with two lines of context either side: `  ` kept, `- ` removed, `+ ` added. */
export function excerpt(before: string, after: string, context = 2): string[] {
  const a = before.split("\n");
  const b = after.split("\n");
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const from = Math.max(0, head - context);
  const lines = [
    ...(from > 0 ? ["  …"] : []),
    ...a.slice(from, head).map((l) => `  ${l}`),
    ...a.slice(head, a.length - tail).map((l) => `- ${l}`),
    ...b.slice(head, b.length - tail).map((l) => `+ ${l}`),
    ...a.slice(a.length - tail, Math.min(a.length, a.length - tail + context)).map((l) => `  ${l}`),
  ];
  if (a.length - tail + context < a.length) lines.push("  …");
  return lines.filter((l, i, all) => !(l === "  " && i === all.length - 1));
}

/** Writes each file next to its target, then renames them all in: a failure leaves no half-written file. */
function writeAll(changes: ReadonlyArray<Change>): void {
  const staged = changes.map((c) => ({ ...c, temp: `${c.path}.new-site-${process.pid}` }));
  for (const c of staged) writeFileSync(c.temp, c.after);
  for (const c of staged) renameSync(c.temp, c.path);
}

export async function main(
  argv: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  let flags: NewSiteFlags;
  let folders: Folders;
  let plan: NewSitePlan;
  try {
    flags = parseNewSiteFlags(argv);
    const root = resolve(flags.root ?? REPOSITORY_ROOT);
    folders = { root, sites: join(root, "sites"), stacks: join(root, "stacks"), plans: join(root, "stacks", "plans") };
    plan = planNewSite(flags, folders);
  } catch (error) {
    return reportInputError(error, err, (n) => `${n} problem(s); nothing was written`);
  }
  const display = (path: string) => relative(folders.root, path);
  const s = plan.scaffold;
  out(
    `new site ${s.name} (${s.code}, ${s.country}) on ${s.provider.flag}: supernet ${s.supernet}` +
      (s.prefix ? `, own prefix ${s.prefix}` : "") +
      (s.placeholders ? `, placeholder addresses from ${s.placeholders}` : "") +
      `, partner ${s.partner}` +
      (plan.partnerChange === "standbyFor" ? ` (stands by for ${s.name} too)` : ""),
  );
  if (flags.dryRun) {
    for (const change of plan.changes) {
      out("");
      if (change.before === undefined) {
        out(`would write ${display(change.path)}:`);
        change.after
          .trimEnd()
          .split("\n")
          .forEach((l) => out(`  ${l}`));
      } else {
        out(`would change ${display(change.path)}:`);
        excerpt(change.before, change.after).forEach((l) => out(`  ${l}`));
      }
    }
    out("");
    out("dry run: nothing was written");
    return 0;
  }
  try {
    writeAll(plan.changes);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code) throw error;
    err(`${COMMAND}: cannot write under ${folders.root} (${code}): run it where this user can write`);
    return 2;
  }
  for (const change of plan.changes) out(`${change.before === undefined ? "wrote" : "changed"} ${display(change.path)}`);
  out("");
  out(`npm run plan -- ${s.name}`);
  return planMain([s.name, "--sites", folders.sites, "--stacks", folders.stacks, "--plans", folders.plans], out, err);
}

if (require.main === module) runAsProcess(main);
