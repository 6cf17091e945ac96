// How the controller knows which node is calling: the node's token, presented as a bearer token
// with the node's name in a header, compared in constant time. (Node certificates replace tokens
// once agents hold them.)

import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { nodeHeader } from '../../shared/protocol/config.js';

export function authenticatedNode(req: IncomingMessage, tokens: Map<string, string>): string | undefined {
  const node = String(req.headers[nodeHeader] ?? '');
  const expected = tokens.get(node);
  if (!expected) return undefined;
  const given = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${expected}`);
  return given.length === want.length && timingSafeEqual(given, want) ? node : undefined;
}
