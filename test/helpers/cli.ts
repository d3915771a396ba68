/** Runs a command's `main` in process and keeps what it prints, line by line. */
export async function captured(
  main: (argv: string[], out: (line: string) => void, err: (line: string) => void) => Promise<number>,
  argv: string[],
): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}
