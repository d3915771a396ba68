/**
 * The one error a renderer throws for input it cannot render safely. Thrown
 * before any text is produced, so a file a daemon would reject never exists.
 */
import { z } from "zod";
import { formatPath } from "../model/validate";

/** One problem: where (`site: host: field`) and which rule it breaks. */
export interface RenderProblem {
  readonly site: string;
  readonly host: string;
  readonly field: string;
  readonly rule: string;
}

/** Formats a problem as `site: host: field: rule`. */
export function formatProblem(p: RenderProblem): string {
  return `${p.site}: ${p.host}: ${p.field}: ${p.rule}`;
}

/**
 * Thrown by renderers. `message` holds one line per problem
 * (`vienna: vie-proxy-1: services[0].port: 70000 must be between 1 and 65535`),
 * so a caller can print it as is and an operator can fix every problem in one pass.
 */
export class RenderInputError extends Error {
  constructor(readonly problems: ReadonlyArray<RenderProblem>) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "RenderInputError";
  }
}

/**
 * Collects problems for one site and host, then throws them together.
 * Renderers use it so that every problem carries the same site and host.
 */
export class ProblemCollector {
  private readonly problems: RenderProblem[] = [];
  constructor(
    readonly site: string,
    readonly host: string,
  ) {}

  /** Records a problem at `field` (a model-relative path such as `time.servers[1]`). */
  add(field: string, rule: string): void {
    this.problems.push({ site: this.site, host: this.host, field, rule });
  }

  /** Records every issue of a failed zod parse; paths are prefixed with `base` when given. */
  addZodIssues(issues: ReadonlyArray<z.core.$ZodIssue>, base = ""): void {
    for (const issue of issues) {
      const path = formatPath(issue.path);
      const field = base && path ? (path.startsWith("[") ? `${base}${path}` : `${base}.${path}`) : base || path || "(input)";
      this.add(field, issue.message);
    }
  }

  /** Parses `value` with `schema`, recording issues; returns the parsed value or undefined. */
  parse<T>(schema: z.ZodType<T>, value: unknown, base = ""): T | undefined {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    this.addZodIssues(result.error.issues, base);
    return undefined;
  }

  /** Throws a `RenderInputError` when any problem was recorded. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw new RenderInputError(this.problems);
  }
}
