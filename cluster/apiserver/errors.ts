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
    readonly details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[] },
  ) {
    super(message);
  }

  /** The `Status` object to send. */
  status(): Record<string, unknown> {
    // An empty reason is left out, as Go's omitempty does (a webhook's denial may give none).
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, ...(this.reason ? { reason: this.reason } : {}), ...(this.details ? { details: this.details } : {}), code: this.code };
  }
}

/**
 * The resource an error is about, as the API server names it: `deployments.apps` (plural and
 * group), and the group and plural apart for `details`, which kubectl reads.
 */
export interface QualifiedResource {
  plural: string;
  group: string;
}

const qualified = (r: QualifiedResource) => (r.group ? `${r.plural}.${r.group}` : r.plural);
const detailsOf = (r: QualifiedResource, name: string) => ({ name, group: r.group, kind: r.plural });

// The catalogue: one constructor per reason, with the real API server's wording, because
// clients (kubectl, client-go) and people both read these messages.

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
export const unauthorized = () => new ApiError(401, 'Unauthorized', 'Unauthorized');
export const notFound = (r: QualifiedResource, name: string) => new ApiError(404, 'NotFound', `${qualified(r)} "${name}" not found`, detailsOf(r, name));
/** A path that names no resource the server has. */
export const noSuchResource = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
export const methodNotAllowed = (verb: string, r: QualifiedResource, why = '') =>
  new ApiError(405, 'MethodNotAllowed', `${verb} is not supported on ${qualified(r)}${why ? `: ${why}` : ''}`, { group: r.group, kind: r.plural });
export const notAcceptable = (accepted: string) => new ApiError(406, 'NotAcceptable', `only the following media types are accepted: ${accepted}`);
export const alreadyExists = (r: QualifiedResource, name: string) => new ApiError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, detailsOf(r, name));
export const conflict = (r: QualifiedResource, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, detailsOf(r, name));
/** What a watch from a revision the server no longer remembers gets; the client lists again. */
export const expired = (message: string) => new ApiError(410, 'Expired', message);
export const tooLarge = (limit: number) => new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than ${limit} bytes`);
export const unsupportedMediaType = (type: string, accepted: readonly string[]) =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format (${type || 'no Content-Type'}) - accepted media types include: ${accepted.join(', ')}`);
/** 422: `kind` is the object's Kind (kubectl prints `The Deployment "web" is invalid: ...`). */
export const invalid = (kind: string, group: string, name: string, causes: StatusCause[]) => {
  const listed = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const list = listed.length === 1 ? listed[0]! : `[${listed.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${group ? `${kind}.${group}` : kind} "${name}" is invalid: ${list}`, { name, group, kind, causes });
};
export const internal = (message: string) => new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
