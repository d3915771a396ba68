/**
 * What every command of the project does with its command line the same
 * way: flags parsed by `node:util` `parseArgs`, then validated by a zod
 * schema; every problem an `InputError` line naming the command, the flag and
 * the rule (exit 2); and the entry point that runs `main` from the folder
 * npm was started in.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ParseArgsConfig, parseArgs } from "node:util";
import { z } from "zod";
import { InputError, formatIssues } from "../../lib/model/validate";
import { RenderInputError, formatProblem } from "../../lib/render/errors";

/**
 * Parses `argv` with `options` and validates `{ location, ...flags }` with
 * `schema` (`location` is the one positional, when there is one; kebab-case
 * flags arrive camelCase). Every problem of the command line is one line:
 * an unknown flag, a flag given twice, a boolean flag with a value, a value
 * flag without one (or followed by another flag instead), more than one
 * location, and whatever the schema refuses.
 * @throws InputError naming the command and the flag
 */
export function parseFlags<S extends z.ZodType>(
  command: string,
  argv: ReadonlyArray<string>,
  options: NonNullable<ParseArgsConfig["options"]>,
  schema: S,
  /** Names of the positional arguments, in order; the schema validates each (absent ones are undefined). */
  positionalNames: ReadonlyArray<string> = ["location"],
): z.infer<S> {
  // Not strict: node's strict mode stops at the first problem, some of its messages span lines.
  const { tokens } = parseArgs({ args: [...argv], allowPositionals: true, options, strict: false, tokens: true });
  const problems: string[] = [];
  const values = new Map<string, string | boolean>();
  const positionals: string[] = [];
  const known = Object.keys(options)
    .map((name) => `--${name}`)
    .join(", ");
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option") continue;
    const flag = `--${token.name}`;
    if (!Object.hasOwn(options, token.name)) {
      problems.push(`${command}: ${token.rawName}: unknown flag (known: ${known})`);
    } else if (values.has(token.name)) {
      problems.push(`${command}: ${flag}: is given more than once: give it once`);
    } else if (options[token.name].type === "boolean") {
      if (token.value === undefined) values.set(token.name, true);
      else problems.push(`${command}: ${flag}: takes no value (got ${JSON.stringify(token.value)}): write ${flag} alone`);
    } else if (token.value === undefined || token.value === "") {
      problems.push(`${command}: ${flag}: needs a value: write ${flag} <value>`);
    } else if (!token.inlineValue && token.value.startsWith("-")) {
      // parseArgs takes the next argument as the value, even another flag.
      problems.push(`${command}: ${flag}: needs a value, got the flag ${token.value}: write ${flag} <value> (or ${flag}=${token.value})`);
    } else {
      values.set(token.name, token.value);
    }
  }
  if (positionals.length > positionalNames.length)
    problems.push(
      positionalNames.length === 1
        ? `${command}: ${positionalNames[0]}: expected one ${positionalNames[0]}, got ${positionals.join(" ")}`
        : `${command}: expected at most ${positionalNames.length} arguments (${positionalNames.join(", ")}), got ${positionals.join(" ")}`,
    );
  if (problems.length > 0) throw new InputError(problems);
  // Flags are kebab-case on the command line (--expect-no-changes) and camelCase in the schema.
  const camel = [...values].map(([k, v]) => [k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()), v]);
  // The first is always passed (the schema says it is required); later ones only when given.
  const named = Object.fromEntries(
    positionalNames.flatMap((name, i) => (i === 0 || i < positionals.length ? [[name, positionals[i]]] : [])),
  );
  const result = schema.safeParse({ ...named, ...Object.fromEntries(camel) }, { reportInput: true });
  if (!result.success) throw new InputError(formatIssues(command, result.error.issues));
  return result.data;
}

/** What a path names: a folder, a file, nothing yet, or something that cannot exist (it lies under a file). */
export function pathKind(path: string): "folder" | "file" | "missing" | "unreachable" {
  try {
    return statSync(resolve(path)).isDirectory() ? "folder" : "file";
  } catch (error) {
    // Under something that is not a folder (ENOTDIR): writing there fails as well. Not throwIfNoEntry: false,
    // which Node.js 22 answers with undefined for ENOTDIR too, as for a path that is merely missing.
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : "unreachable";
  }
}

/** The problems of a flag that names a file to write (its folders are made): none, or one line naming the flag. */
export function outputFileProblems(command: string, flag: string, path: string | undefined): string[] {
  if (!path) return [];
  const kind = pathKind(path);
  if (kind === "folder") return [`${command}: --${flag}: ${path} is a folder: name the file to write`];
  if (kind === "unreachable") return [`${command}: --${flag}: ${path} lies under a file: name a path in a folder`];
  return [];
}

/** A problem as one line: line breaks and other control characters a value may carry are escaped. */
export function oneLine(problem: string): string {
  return problem.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\n" ? "\\n" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

/** Prints an input error's lines and returns its exit code (2), or rethrows anything else. */
export function reportInputError(error: unknown, err: (line: string) => void, trailer?: (count: number) => string): number {
  // A renderer's refusal is a backstop behind validation (a rule validation missed): input too, never a stack trace.
  const problems =
    error instanceof InputError ? error.problems : error instanceof RenderInputError ? error.problems.map(formatProblem) : undefined;
  if (!problems) throw error;
  problems.forEach((p) => err(oneLine(p)));
  if (trailer) err(trailer(problems.length));
  return 2;
}

/** Runs a command's `main` as the process, from the folder npm was started in; exits with its code. */
export function runAsProcess(main: (argv: string[]) => Promise<number>): void {
  process.chdir(process.env.INIT_CWD ?? process.cwd());
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
