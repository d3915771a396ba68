/**
 * The offline plan: what a stack would register, printed like `pulumi
 * preview`, stored as a JSON snapshot, and compared with the committed one.
 * Pure functions over the harness's records.
 */
import { MockRunResult, RecordedResource, SECRET_MASK } from "./harness";

export interface PlanSnapshot {
  readonly stack: string;
  readonly resources: ReadonlyArray<{
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly parent?: string;
    /** False for components, which the engine creates nothing for. */
    readonly custom?: boolean;
    /** URNs this resource waits for, as the engine receives them (explicit `dependsOn` and input sources). */
    readonly dependencies?: ReadonlyArray<string>;
    readonly inputs: Record<string, unknown>;
    /** Digests of masked secret inputs, so a diff can say a secret changed. */
    readonly secretDigests?: Readonly<Record<string, string>>;
  }>;
  readonly outputs: Record<string, unknown>;
}

/** The snapshot form of a run: stable key order, nothing machine-specific. */
export function toSnapshot(run: MockRunResult): PlanSnapshot {
  return {
    stack: run.stack,
    resources: run.resources.map((r) => ({
      urn: r.urn,
      type: r.type,
      name: r.name,
      ...(r.parent ? { parent: r.parent } : {}),
      ...(r.custom ? {} : { custom: false }),
      ...(r.dependencies.length > 0 ? { dependencies: r.dependencies } : {}),
      inputs: r.inputs,
      ...(Object.keys(r.secretDigests).length > 0 ? { secretDigests: r.secretDigests } : {}),
    })),
    outputs: run.outputs,
  };
}

/**
 * The longest chain of resources a deployment must create one after another:
 * the critical path through `dependencies` over the resources the engine
 * creates (components are skipped; a dependency on one already stands for its
 * children). Ties go to the chain whose names sort first, so the answer is stable.
 * @returns the chain, first resource first (names)
 */
export function longestChain(snapshot: Pick<PlanSnapshot, "resources">): string[] {
  const byUrn = new Map(snapshot.resources.map((r) => [r.urn, r]));
  const memo = new Map<string, string[]>();
  const visiting = new Set<string>();
  const chainTo = (urn: string): string[] => {
    const known = memo.get(urn);
    if (known) return known;
    if (visiting.has(urn)) throw new Error(`dependency cycle through ${urn}`);
    visiting.add(urn);
    const r = byUrn.get(urn)!;
    let best: string[] = [];
    for (const dep of [...(r.dependencies ?? [])].sort()) {
      if (!byUrn.has(dep)) continue;
      const c = chainTo(dep);
      if (c.length > best.length) best = c;
    }
    visiting.delete(urn);
    const chain = r.custom === false ? best : [...best, r.name];
    memo.set(urn, chain);
    return chain;
  };
  let longest: string[] = [];
  for (const r of [...snapshot.resources].sort((a, b) => (a.urn < b.urn ? -1 : 1))) {
    const c = chainTo(r.urn);
    if (c.length > longest.length) longest = c;
  }
  return longest;
}

/** JSON with sorted keys, two-space indent and a final newline: byte-stable. */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) + "\n";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Short type for display: `hcloud:index/networkSubnet:NetworkSubnet` → `hcloud:NetworkSubnet`. */
export function shortType(type: string): string {
  const parts = type.split(":");
  return parts.length === 3 ? `${parts[0]}:${parts[2]}` : type;
}

function formatValue(value: unknown, max = 60): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "undefined");
  const oneLine = text.replace(/\s+/g, " ");
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}

/** One input for the tree: file contents and scripts become their size, the rest is cut at a readable length. */
function summarizeInput(value: unknown): string {
  if (typeof value === "string" && value.includes("\n")) return `<${value.split("\n").length} lines>`;
  return formatValue(value, 48);
}

/** Inputs worth a line in the tree: scalars and short values, never bulky file contents. */
export function keyInputs(inputs: Record<string, unknown>): string {
  return Object.keys(inputs)
    .filter((k) => !k.startsWith("__"))
    .map((k) => `${k}=${summarizeInput(inputs[k])}`)
    .join(" ");
}

/** The resource tree, children under parents, in URN order. */
export function renderTree(resources: ReadonlyArray<Pick<RecordedResource, "urn" | "type" | "name" | "parent" | "inputs">>): string[] {
  const children = new Map<string | undefined, (typeof resources)[number][]>();
  const known = new Set(resources.map((r) => r.urn));
  for (const r of resources) {
    const parent = r.parent && known.has(r.parent) ? r.parent : undefined;
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const r of children.get(parent) ?? []) {
      const inputs = keyInputs(r.inputs);
      lines.push(`${"    ".repeat(depth)}+ ${shortType(r.type)}  ${r.name}${inputs ? `  ${inputs}` : ""}`);
      walk(r.urn, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines;
}

/** Resource counts per type, sorted by type. */
export function countByType(resources: ReadonlyArray<{ type: string }>): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => a.localeCompare(b));
}

/** Renders rows as an aligned text table. */
export function renderTable(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

export interface PropertyChange {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

export interface PlanDiff {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: Array<{ urn: string; changes: PropertyChange[] }>;
  readonly outputs: PropertyChange[];
}

/** Leaf-level differences between two values, as `a.b[2]` paths. */
export function diffValues(before: unknown, after: unknown, path = ""): PropertyChange[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const isObject = (v: unknown) => v !== null && typeof v === "object";
  if (isObject(before) && isObject(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].sort().flatMap((k) => {
      const child = Array.isArray(before) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
      return diffValues((before as Record<string, unknown>)[k], (after as Record<string, unknown>)[k], child);
    });
  }
  return [{ path: path || "(value)", before, after }];
}

/** Compares a run with a committed snapshot, by URN. */
export function diffPlans(before: PlanSnapshot, after: PlanSnapshot): PlanDiff {
  const old = new Map(before.resources.map((r) => [r.urn, r]));
  const now = new Map(after.resources.map((r) => [r.urn, r]));
  const changed: PlanDiff["changed"] = [];
  for (const [urn, r] of now) {
    const prior = old.get(urn);
    if (!prior) continue;
    const changes = diffValues({ inputs: prior.inputs, parent: prior.parent }, { inputs: r.inputs, parent: r.parent });
    // A secret shows as [secret] on both sides; its digest tells that it changed.
    const digests = new Set([...Object.keys(prior.secretDigests ?? {}), ...Object.keys(r.secretDigests ?? {})]);
    for (const path of [...digests].sort()) {
      if (prior.secretDigests?.[path] !== r.secretDigests?.[path] && !changes.some((c) => c.path === `inputs.${path}`)) {
        changes.push({ path: `inputs.${path}`, before: SECRET_MASK, after: SECRET_MASK });
      }
    }
    if (changes.length > 0) changed.push({ urn, changes: changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) });
  }
  return {
    added: [...now.keys()].filter((u) => !old.has(u)),
    removed: [...old.keys()].filter((u) => !now.has(u)),
    changed,
    outputs: diffValues(before.outputs, after.outputs),
  };
}

/** One file of a host's transaction that a change adds, removes or edits. */
export interface FileChange {
  /** The transaction resource's name, for example `vienna-cfg-vie-stor-1-tx`. */
  readonly resource: string;
  readonly path: string;
  readonly kind: "added" | "removed" | "changed";
  /** Content before and after (`[secret]` for a secret file). */
  readonly before?: string;
  readonly after?: string;
}

/**
 * The files each host transaction ships, by resource name: the listing a
 * `HostConfig` transaction carries in `triggers[1]` (path → content, a secret
 * file as `[secret]`).
 */
export function transactionFiles(plan: PlanSnapshot): Map<string, Record<string, string>> {
  const files = new Map<string, Record<string, string>>();
  for (const r of plan.resources) {
    const listing = (r.inputs.triggers as unknown[] | undefined)?.[1];
    if (r.type === "command:remote:Command" && listing && typeof listing === "object" && !Array.isArray(listing))
      files.set(r.name, listing as Record<string, string>);
  }
  return files;
}

/** File-level changes between two plans: what a reviewer reads in a host transaction's diff. */
export function fileChanges(before: PlanSnapshot, after: PlanSnapshot): FileChange[] {
  const old = transactionFiles(before);
  const now = transactionFiles(after);
  const changes: FileChange[] = [];
  for (const resource of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    const a = old.get(resource) ?? {};
    const b = now.get(resource) ?? {};
    for (const path of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (!(path in a)) changes.push({ resource, path, kind: "added", after: b[path] });
      else if (!(path in b)) changes.push({ resource, path, kind: "removed", before: a[path] });
      else if (a[path] !== b[path]) changes.push({ resource, path, kind: "changed", before: a[path], after: b[path] });
    }
  }
  return changes;
}

export function hasChanges(diff: PlanDiff): boolean {
  return diff.added.length + diff.removed.length + diff.changed.length + diff.outputs.length > 0;
}

/** `urn:pulumi:stack::project::a$b::name` → `b name`, readable in a diff. */
export function describeUrn(urn: string): string {
  const parts = urn.split("::");
  return `${shortType(parts[2].split("$").pop() ?? "")}  ${parts[3]}`;
}

const isText = (v: unknown): v is string => typeof v === "string" && v.includes("\n");

/** Most changed lines a diff shows per file; the rest are counted. */
export const MAX_LINE_CHANGES = 12;

/**
 * The lines a file content change removes and adds, in file order: enough to
 * review a rendered configuration change in a pull request.
 */
export function lineChanges(before: string, after: string): string[] {
  const a = before.split("\n");
  const b = after.split("\n");
  const inB = new Set(b);
  const inA = new Set(a);
  const changed = [...a.filter((l) => !inB.has(l)).map((l) => `- ${l}`), ...b.filter((l) => !inA.has(l)).map((l) => `+ ${l}`)];
  if (changed.length === 0) return ["(lines reordered)"];
  return changed.length > MAX_LINE_CHANGES
    ? [...changed.slice(0, MAX_LINE_CHANGES), `… ${changed.length - MAX_LINE_CHANGES} more changed lines`]
    : changed;
}

/** The diff as `pulumi preview --diff` would summarise it. */
export function renderDiff(diff: PlanDiff): string[] {
  if (!hasChanges(diff)) return ["no changes"];
  const lines: string[] = [];
  for (const urn of diff.added) lines.push(`+ ${describeUrn(urn)}`);
  for (const urn of diff.removed) lines.push(`- ${describeUrn(urn)}`);
  for (const { urn, changes } of diff.changed) {
    lines.push(`~ ${describeUrn(urn)}`);
    for (const c of changes) {
      if (isText(c.before) && isText(c.after)) lines.push(`    ~ ${c.path}:`, ...lineChanges(c.before, c.after).map((l) => `        ${l}`));
      else lines.push(`    ~ ${c.path}: ${formatValue(c.before)} => ${formatValue(c.after)}`);
    }
  }
  for (const c of diff.outputs) lines.push(`~ output ${c.path}: ${formatValue(c.before)} => ${formatValue(c.after)}`);
  lines.push(
    `${diff.added.length} to add, ${diff.changed.length} to change, ${diff.removed.length} to delete` +
      (diff.outputs.length ? `, ${diff.outputs.length} output change(s)` : ""),
  );
  return lines;
}
