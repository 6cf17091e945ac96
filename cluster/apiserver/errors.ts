// The Kubernetes API's errors: a `Status` object with the HTTP code, a machine-readable reason
// (NotFound, AlreadyExists, Conflict, Invalid, Gone, UnsupportedMediaType, MethodNotAllowed,
// Unauthorized...) and, for 422, the fields at fault, as kubectl prints them.

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[] },
  ) {
    super(message);
  }

  /** The `Status` object to send. */
  status(): Record<string, unknown> {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, ...(this.details ? { details: this.details } : {}), code: this.code };
  }
}
