/**
 * What every command of the project does with its command line the same
 * way: flags parsed by `node:util` `parseArgs`, then validated by a zod
 * schema; every problem an `InputError` line naming the command, the flag and
 * the rule (exit 2); and the entry point that runs `main` from the folder
 * npm was started in.
 */
import { ParseArgsConfig, parseArgs } from "node:util";
import { z } from "zod";
import { InputError, formatIssues } from "../../lib/model/validate";

/**
 * Parses `argv` with `options` and validates `{ location, ...flags }` with
 * `schema` (`location` is the one positional, when there is one; kebab-case
 * flags arrive camelCase).
 * @throws InputError naming the command and the flag
 */
export function parseFlags<S extends z.ZodType>(
  command: string,
  argv: ReadonlyArray<string>,
  options: NonNullable<ParseArgsConfig["options"]>,
  schema: S,
): z.infer<S> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, options });
  } catch (error) {
    throw new InputError([`${command}: ${(error as Error).message}`]);
  }
  if (parsed.positionals.length > 1) {
    throw new InputError([`${command}: location: expected one location, got ${parsed.positionals.join(" ")}`]);
  }
  // Flags are kebab-case on the command line (--expect-no-changes) and camelCase in the schema.
  const values = Object.fromEntries(
    Object.entries(parsed.values).map(([k, v]) => [k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()), v]),
  );
  const result = schema.safeParse({ location: parsed.positionals[0], ...values }, { reportInput: true });
  if (!result.success) throw new InputError(formatIssues(command, result.error.issues));
  return result.data;
}

/** Prints an input error's lines and returns its exit code (2), or rethrows anything else. */
export function reportInputError(error: unknown, err: (line: string) => void, trailer?: (count: number) => string): number {
  if (!(error instanceof InputError)) throw error;
  error.problems.forEach((p) => err(p));
  if (trailer) err(trailer(error.problems.length));
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
