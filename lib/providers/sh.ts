/** POSIX sh quoting for the lines the adapters and the failover script render. */

/** Quotes a value for POSIX sh: single quotes, each `'` closed, escaped and reopened (validated values hold none). */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}
