/**
 * Reads a rendered systemd service as the twin runs it without systemd: its
 * command lines split into words exactly as systemd splits them, its
 * environment, and the conditions that decide whether it runs. The twin runs
 * the words unchanged; it never rewrites a command line.
 *
 * Source: systemd.service(5), "COMMAND LINES" (blanks separate words, double
 * quotes group, a backslash escapes the next character; `$VAR`/`${VAR}` and
 * `%` specifiers expand, which the twin refuses rather than imitates),
 * systemd.exec(5) `Environment=`, systemd.unit(5) `ConditionPathExists=`.
 * Pure.
 */

/** One service unit, as the twin runs it. */
export interface ServiceCommands {
  /** `ExecStartPre=` lines, in order, each as argv; `ignoreFailure` for a `-` prefix (systemd goes on when it fails). */
  readonly pre: ReadonlyArray<ReadonlyArray<string>>;
  /** Indexes into `pre` whose failure systemd ignores (`ExecStartPre=-…`). */
  readonly preIgnoringFailure: ReadonlyArray<number>;
  /** `ExecStart=` (a oneshot may have several; in order). */
  readonly start: ReadonlyArray<ReadonlyArray<string>>;
  readonly post: ReadonlyArray<ReadonlyArray<string>>;
  /** `Environment=` assignments, in order (later wins). */
  readonly environment: Readonly<Record<string, string>>;
  /** `ConditionPathExists=` paths: the unit is skipped unless each exists (a `!` prefix negates). */
  readonly conditionPathExists: ReadonlyArray<string>;
}

/** Thrown for a line the twin cannot run unchanged (a variable or specifier systemd would expand). */
export class UnitReadError extends Error {}

/**
 * The words of one systemd command line.
 * @throws UnitReadError on `$`/`%` expansions and an unterminated quote
 */
export function systemdWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) break;
    let word = "";
    while (i < line.length && line[i] !== " " && line[i] !== "\t") {
      const c = line[i];
      if (c === "$" || c === "%") throw new UnitReadError(`${line}: ${c} expansions are not run by the twin`);
      if (c === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "$" || line[i] === "%") throw new UnitReadError(`${line}: ${line[i]} expansions are not run by the twin`);
          if (line[i] === "\\") i++;
          word += line[i++];
        }
        if (i >= line.length) throw new UnitReadError(`${line}: unterminated quote`);
        i++;
      } else {
        if (c === "\\") i++;
        word += line[i++];
      }
    }
    words.push(word);
  }
  return words;
}

/**
 * The commands, environment and conditions of a service unit's `[Service]`
 * and `[Unit]` sections. A leading `-` on `ExecStartPre=` (failure
 * ignored) is kept; any other prefix (`@`, `+`, `!`, `:`) is refused.
 */
export function readServiceUnit(content: string): ServiceCommands {
  const pre: string[][] = [];
  const start: string[][] = [];
  const post: string[][] = [];
  const environment: Record<string, string> = {};
  const conditionPathExists: string[] = [];
  const preIgnoringFailure: number[] = [];
  for (const raw of content.split("\n")) {
    const line = raw.trim();
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    const command = (allowIgnore = false) => {
      const ignore = allowIgnore && value.startsWith("-");
      const rest = ignore ? value.slice(1) : value;
      if (/^[-@+!:]/.test(rest)) throw new UnitReadError(`${key}=${value}: command prefixes other than - are not run by the twin`);
      return { argv: systemdWords(rest), ignore };
    };
    if (key === "ExecStartPre") {
      const c = command(true);
      if (c.ignore) preIgnoringFailure.push(pre.length);
      pre.push(c.argv);
    } else if (key === "ExecStart") start.push(command().argv);
    else if (key === "ExecStartPost") post.push(command().argv);
    else if (key === "Environment") {
      for (const word of systemdWords(value)) {
        const eq = word.indexOf("=");
        if (eq > 0) environment[word.slice(0, eq)] = word.slice(eq + 1);
      }
    } else if (key === "ConditionPathExists") conditionPathExists.push(value);
  }
  return { pre, preIgnoringFailure, start, post, environment, conditionPathExists };
}
