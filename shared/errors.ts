// Typed errors shared by every deployable: a stable code for scripts and logs, and a message that
// says what was wrong and, where it helps, what to do about it.

export class AmbitError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = code;
  }
}

/** One problem in one field of one resource; `line` is known when the resource came from a file. */
export interface FieldProblem {
  /** Index of the resource in the batch it came in. */
  index: number;
  /** `Kind namespace/name` or `Kind name`, as far as the resource says. */
  resource: string;
  /** Dotted path of the field, e.g. `spec.template.spec.containers[0].command`; empty for the whole resource. */
  field: string;
  message: string;
  file?: string;
  line?: number;
}

export function describeProblem(p: FieldProblem): string {
  const where = p.file ? `${p.file}${p.line ? `:${p.line}` : ''}: ` : '';
  const field = p.field ? `${p.field} ` : '';
  return `${where}${p.resource}: ${field}${p.message}`;
}

/** A batch of resources was refused; nothing of it was applied. */
export class ResourceInvalid extends AmbitError {
  constructor(readonly problems: FieldProblem[]) {
    super('ResourceInvalid', problems.map(describeProblem).join('\n'));
  }
}

/** A resource named on the command line or in a request does not exist. */
export class NotFound extends AmbitError {
  constructor(what: string) {
    super('NotFound', `${what} not found`);
  }
}

/** Wraps a failed external command (ip, nft, iptables) with its arguments and stderr. */
export class CommandFailed extends AmbitError {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super('CommandFailed', `${command} failed (exit ${exitCode}): ${stderr.trim() || 'no output'}`);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
