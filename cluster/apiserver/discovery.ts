// What a Kubernetes client asks before anything else: /version, the discovery documents (/api,
// /apis, each group-version's resource list) and the OpenAPI v3 documents kubectl validates with.
// Built from the kinds ambit serves (shared/resources/kinds.ts) and their schemas.

import type { IncomingMessage, ServerResponse } from 'node:http';

/** Answers `req` if it is a discovery, version or OpenAPI request; false when it is not one. */
export function handleDiscovery(req: IncomingMessage, res: ServerResponse): boolean {
  void req;
  void res;
  return false;
}
