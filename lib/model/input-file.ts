/**
 * The one reader of every file the tools read as input: site files,
 * `footprint.yaml`, stack files, plan snapshots. Every rule about a file as
 * such lives here once: it exists, is a regular file, is not absurdly large,
 * is UTF-8 text without a byte order mark or control characters, and (for
 * YAML) is one document, a mapping at the top level, with unique keys, known
 * tags, no nesting deeper than a site file needs and no aliases that expand
 * it (the "billion laughs"). Each problem is one line naming the file, where
 * (`(file)`, `line N` or `(top level)`) and the rule.
 */
import { Stats, closeSync, lstatSync, openSync, readSync, statSync } from "node:fs";
import { isUtf8 } from "node:buffer";
import { Document, LineCounter, Node, Parser, isAlias, isCollection, isMap, isPair, isScalar, isSeq, parseAllDocuments, visit } from "yaml";
import type { CST } from "yaml";

const MiB = 1024 * 1024;
/** Largest YAML input file read: a site file is a few KiB, the footprint grows by about 1 KiB per service. */
export const MAX_INPUT_FILE_BYTES = 1 * MiB;
/**
 * Deepest nesting of mappings and lists in a YAML input file (site files nest 5 levels). The YAML
 * composer recurses per level: a few hundred levels exhaust the stack, so deeper files are refused
 * before they are composed.
 */
export const MAX_YAML_DEPTH = 32;
/**
 * Most values that aliases (`*name`) may add to a YAML input file when expanded. An alias copies its
 * anchor's whole subtree, so nine nested aliases of nine can expand a 1 KiB file to a billion values.
 */
export const MAX_YAML_ALIAS_EXPANSION = 10_000;

/** A file read as text, or the problems that kept it from being read. */
export interface InputText {
  readonly text?: string;
  readonly problems: string[];
}

/** A YAML file read as data (always a mapping at the top level), or its problems. */
export interface InputYaml {
  readonly data?: Record<string, unknown>;
  readonly problems: string[];
}

/** What a failed `stat` or read means (`rule`), and what to do about it (`fix`). */
export function describeFsError(error: unknown): { rule: string; fix: string } {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return { rule: "does not exist", fix: "check the path" };
    case "EACCES":
    case "EPERM":
      return { rule: "cannot be read (permission denied)", fix: "give the user running the command read access" };
    case "ELOOP":
      return { rule: "is a loop of symbolic links", fix: "point the link at a real file or folder" };
    case "ENOTDIR":
      return { rule: "lies under something that is not a folder", fix: "check the path" };
    case "ENAMETOOLONG":
      return { rule: "has a name too long for the file system", fix: "check the path" };
    default:
      return { rule: `cannot be read (${code ?? (error as Error).message})`, fix: "check the path and the disk" };
  }
}

/** A size as an operator reads it: whole MiB where it is one, else KiB (rounded up, so a byte over a limit shows). */
function formatSize(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

function lineAt(bytes: Buffer, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence, or -1. */
function firstInvalidUtf8(bytes: Buffer): number {
  if (isUtf8(bytes)) return -1;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const [extra, min] = (b & 0xe0) === 0xc0 ? [1, 0x80] : (b & 0xf0) === 0xe0 ? [2, 0x800] : (b & 0xf8) === 0xf0 ? [3, 0x10000] : [0, 0];
    if (extra === 0) return i;
    let cp = b & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += extra + 1;
  }
  return -1;
}

/** The first `limit` bytes of a file (all of it when smaller), read in chunks: what it holds, not what stat said. */
function readAtMost(path: string, limit: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    while (length < limit) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, limit - length));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      length += n;
    }
    return Buffer.concat(chunks, length);
  } finally {
    closeSync(fd);
  }
}

/** Control characters no input text holds (tab, line feed and carriage return are text). */
const CONTROL_CHARACTER = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const CONTROL_NAMES: Record<number, string> = { 0: "NUL", 0x1b: "ESC", 0x7f: "DEL" };

/**
 * Reads a file as UTF-8 text. Refuses, each as one problem: a path that does
 * not exist or cannot be read, anything but a regular file, more than
 * `maxBytes`, a byte order mark, bytes that are not UTF-8, control characters.
 * @param display how problems name the file (repository-relative)
 * @param maxBytes @default MAX_INPUT_FILE_BYTES
 */
export function readInputText(path: string, display: string, maxBytes: number = MAX_INPUT_FILE_BYTES): InputText {
  const fail = (where: string, rule: string): InputText => ({ problems: [`${display}: ${where}: ${rule}`] });
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT" && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) {
      return fail("(file)", "is a symbolic link to nothing: point it at the file or remove it");
    }
    const { rule, fix } = describeFsError(error);
    return fail("(file)", `${rule}: ${fix}`);
  }
  if (stats.isDirectory()) return fail("(file)", "is a folder, not a file: replace it with the file");
  if (!stats.isFile()) return fail("(file)", "is not a regular file (a device, pipe or socket): name a file");
  const tooLarge = (size: number) =>
    fail("(file)", `is ${formatSize(size)}, more than the ${formatSize(maxBytes)} an input file may hold: check that it is the right file`);
  if (stats.size > maxBytes) return tooLarge(stats.size);
  let bytes: Buffer;
  try {
    bytes = readAtMost(path, maxBytes + 1);
  } catch (error) {
    const { rule, fix } = describeFsError(error);
    return fail("(file)", `${rule}: ${fix}`);
  }
  // The file may have grown since stat (or reported no size, as files under /proc do).
  if (bytes.length > maxBytes) return tooLarge(bytes.length);
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return fail("line 1", "starts with a byte order mark (BOM): save the file as UTF-8 without BOM");
  }
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return fail("line 1", "is UTF-16 (it starts with a UTF-16 byte order mark): save the file as UTF-8 without BOM");
  }
  const invalid = firstInvalidUtf8(bytes);
  if (invalid >= 0) {
    const hex = bytes[invalid].toString(16).toUpperCase().padStart(2, "0");
    return fail(`line ${lineAt(bytes, invalid)}`, `byte 0x${hex} is not UTF-8: save the file as UTF-8`);
  }
  const text = bytes.toString("utf8");
  const control = CONTROL_CHARACTER.exec(text);
  if (control) {
    const code = control[0].charCodeAt(0);
    const name = `U+${code.toString(16).toUpperCase().padStart(4, "0")}${CONTROL_NAMES[code] ? ` (${CONTROL_NAMES[code]})` : ""}`;
    const line = text.slice(0, control.index).split("\n").length;
    return fail(`line ${line}`, `holds the control character ${name}: an input file is text (was a binary file saved under this name?)`);
  }
  return { text, problems: [] };
}

/** The deepest nesting of collections in a CST, walked without recursion, with the offset where it is deepest. */
function deepestNesting(tokens: Iterable<CST.Token>): { depth: number; offset: number } {
  let deepest = { depth: 0, offset: 0 };
  const stack: Array<{ token: CST.Token | null | undefined; depth: number }> = [];
  for (const token of tokens) stack.push({ token, depth: 0 });
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (!token) continue;
    if (token.type === "document") {
      stack.push({ token: token.value, depth });
    } else if (token.type === "block-map" || token.type === "block-seq" || token.type === "flow-collection") {
      if (depth + 1 > deepest.depth) deepest = { depth: depth + 1, offset: token.offset };
      for (const item of token.items) {
        stack.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
      }
    }
  }
  return deepest;
}

/** The keys of a document by the offset where each starts, for messages about a key. */
function keysByOffset(doc: Document): Map<number, string> {
  const keys = new Map<number, string>();
  visit(doc, {
    Pair(_key, pair) {
      if (isScalar(pair.key) && pair.key.range) keys.set(pair.key.range[0], String(pair.key.value));
    },
  });
  return keys;
}

/** What an error or warning of the `yaml` package says, with what to do where it says nothing. */
function yamlProblem(doc: Document, code: string, message: string, pos: [number, number]): string {
  switch (code) {
    case "DUPLICATE_KEY":
      return `key ${keysByOffset(doc).get(pos[0]) ?? "?"} appears more than once in one mapping: keep one`;
    case "TAG_RESOLVE_FAILED":
      return `${message
        .split("\n")[0]
        .replace(/^Unresolved tag:? /, "unknown tag ")
        .replace(/ at line \d+, column \d+:?$/, "")}: remove it (input files hold plain strings, numbers, booleans, lists and mappings)`;
    default:
      return message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
  }
}

function nodeLine(lines: LineCounter, node: { range?: readonly number[] | null } | null | undefined): string {
  return node?.range ? `line ${lines.linePos(node.range[0]).line}` : "(top level)";
}

/**
 * Checks the aliases of a document: each names an anchor set before it, none
 * refers to the node that contains it, and together they add at most
 * `MAX_YAML_ALIAS_EXPANSION` values when expanded. Linear in the document:
 * each node's expanded size is computed once.
 */
function aliasProblems(doc: Document, lines: LineCounter, display: string): string[] {
  const targets = new Map<Node, Node | undefined>();
  const anchors = new Map<string, Node>();
  const aliases: Node[] = [];
  const problems: string[] = [];
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        // The last anchor of that name before the alias, as YAML resolves it.
        targets.set(node, anchors.get(node.source));
        aliases.push(node);
      } else if (node.anchor) {
        anchors.set(node.anchor, node);
      }
    },
    Pair(_key, pair) {
      if (isCollection(pair.key) || isAlias(pair.key))
        problems.push(
          `${display}: ${nodeLine(lines, pair.key)}: a key must be a plain value, not a list, mapping or alias: write the key out`,
        );
    },
  });
  if (problems.length > 0) return problems;

  const sizes = new Map<Node, number>();
  const inProgress = new Set<Node>();
  let cycle: Node | undefined;
  // Depth is bounded by MAX_YAML_DEPTH, so the recursion is too.
  const size = (node: unknown): number => {
    if (!node || typeof node !== "object") return 0;
    if (isPair(node)) return size(node.key) + size(node.value);
    const n = node as Node;
    const known = sizes.get(n);
    if (known !== undefined) return known;
    if (inProgress.has(n)) {
      cycle ??= n;
      return 0;
    }
    inProgress.add(n);
    let total = 1;
    if (isAlias(n)) total = size(targets.get(n));
    else if (isMap(n) || isSeq(n)) for (const item of n.items) total += size(item);
    inProgress.delete(n);
    sizes.set(n, total);
    return total;
  };
  let added = 0;
  for (const alias of aliases) {
    if (!isAlias(alias)) continue;
    const where = nodeLine(lines, alias);
    const target = targets.get(alias);
    if (!target) {
      problems.push(`${display}: ${where}: alias *${alias.source} names no anchor: set &${alias.source} on a value before it`);
      continue;
    }
    cycle = undefined;
    added += size(target);
    if (cycle) {
      problems.push(
        `${display}: ${where}: alias *${alias.source} lies inside the value it names: a file holds a tree, write the value out`,
      );
      return problems;
    }
    if (added > MAX_YAML_ALIAS_EXPANSION) {
      problems.push(
        `${display}: ${where}: alias *${alias.source} expands the file beyond ${MAX_YAML_ALIAS_EXPANSION} values (a resource exhaustion attack, "billion laughs"): write the values out instead of aliasing them`,
      );
      return problems;
    }
  }
  return problems;
}

/**
 * Reads one YAML input file through `readInputText`, then refuses: syntax
 * errors, duplicate keys, unknown tags (each naming the line); nesting deeper
 * than `MAX_YAML_DEPTH`; aliases that name no anchor, refer to themselves or
 * expand beyond `MAX_YAML_ALIAS_EXPANSION`; keys that are lists or mappings;
 * more than one document; an empty file; anything but a mapping at the top level.
 * @param display how problems name the file (repository-relative)
 */
export function readYaml(path: string, display: string): InputYaml {
  const read = readInputText(path, display);
  if (read.text === undefined) return { problems: read.problems };
  const text = read.text;

  // The CST parser keeps its own stack: measuring depth there cannot exhaust the call stack.
  const nesting = deepestNesting(new Parser().parse(text));
  if (nesting.depth > MAX_YAML_DEPTH) {
    const line = text.slice(0, nesting.offset).split("\n").length;
    return {
      problems: [`${display}: line ${line}: lists and mappings nest deeper than ${MAX_YAML_DEPTH} levels: flatten the file`],
    };
  }

  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true, resolveKnownTags: false, lineCounter: lines });
  const docs = Array.isArray(parsed) ? parsed : [];
  const problems: string[] = [];
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) {
      problems.push(`${display}: line ${e.linePos?.[0].line ?? "?"}: ${yamlProblem(doc, e.code, e.message, e.pos)}`);
    }
  }
  if (docs.length > 1) {
    problems.push(
      `${display}: line ${lines.linePos(docs[1].range[0]).line}: a second YAML document starts here: a file holds one document, remove the --- and what follows`,
    );
  }
  if (problems.length > 0) return { problems };
  const doc = docs[0];
  if (!doc || doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return { problems: [`${display}: (top level): the file is empty: write its settings as key: value lines`] };
  }
  if (!isMap(doc.contents)) {
    const got = isSeq(doc.contents)
      ? "a list"
      : isAlias(doc.contents)
        ? "an alias"
        : `the single value ${JSON.stringify(String(doc.contents))}`;
    return { problems: [`${display}: (top level): expected a mapping (key: value lines), got ${got}`] };
  }
  const aliases = aliasProblems(doc, lines, display);
  if (aliases.length > 0) return { problems: aliases };
  // Aliases are bounded above; the yaml package's own alias heuristic would refuse some files that pass.
  return { data: doc.toJS({ maxAliasCount: -1 }) as Record<string, unknown>, problems: [] };
}
