// PATCH bodies of the Kubernetes API applied to a stored object: JSON merge patch (RFC 7386), JSON
// patch (RFC 6902), strategic merge patch (built-in kinds, by their merge keys) and server-side
// apply (field managers). Pure functions: the server reads the body and the stored object, this
// computes the new object, and the server validates and stores it.

import type { Resource } from '../../shared/resources/types.js';
import { ApiError } from './errors.js';

export const patchTypes = ['application/merge-patch+json', 'application/json-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'] as const;
export type PatchType = (typeof patchTypes)[number];

/** The object `current` with `body` (of media type `type`) applied. Throws ApiError (415, 422). */
export function applyPatch(current: Resource, body: string, type: PatchType): Resource {
  void current;
  void body;
  throw new ApiError(415, 'UnsupportedMediaType', `${type} is not supported yet`);
}

/**
 * Server-side apply of `applied` (the manager's whole intent) onto `current` (undefined: create).
 * Conflicts with other managers' fields are 409 unless `force`.
 */
export function serverSideApply(current: Resource | undefined, applied: Resource, manager: string, force: boolean): Resource {
  void current;
  void applied;
  void manager;
  void force;
  throw new ApiError(415, 'UnsupportedMediaType', 'server-side apply is not supported yet');
}
