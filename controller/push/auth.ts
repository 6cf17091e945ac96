// How the controller knows which node is calling. An agent first proves it with its node's token
// (a bearer token with the node's name in a header, compared in constant time), and gets a node
// certificate (spiffe://<td>/ambit/node/<name>) with it; from then on it presents that certificate
// on the TLS connection instead, checked with the same validator as every SVID.

import type { IncomingMessage } from 'node:http';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { nodeHeader } from '../../shared/protocol/config.js';
import { parseNodeSpiffeId } from '../../shared/identity/spiffe.js';
import { type TrustBundle, validateSpiffeCertificate } from '../../shared/identity/svid.js';

export interface NodeAuth {
  node: string;
  via: 'token' | 'certificate';
}

export interface Authenticator {
  tokens: Map<string, string>;
  /** The CA's current trust bundle, for node certificates. */
  bundle?: () => TrustBundle;
}

export function authenticatedNode(req: IncomingMessage, a: Authenticator): NodeAuth | undefined {
  const fromCert = a.bundle ? certificateNode(req.socket as TLSSocket, a) : undefined;
  if (fromCert) return { node: fromCert, via: 'certificate' };
  const node = String(req.headers[nodeHeader] ?? '');
  const expected = a.tokens.get(node);
  if (!expected) return undefined;
  const given = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${expected}`);
  return given.length === want.length && timingSafeEqual(given, want) ? { node, via: 'token' } : undefined;
}

function certificateNode(socket: TLSSocket, a: Authenticator): string | undefined {
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate;
  if (!peer?.raw) return undefined;
  const chain: Buffer[] = [];
  for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && chain.length < 5; c = c.issuerCertificate === c ? undefined : c.issuerCertificate) chain.push(c.raw);
  try {
    const { uri } = validateSpiffeCertificate(chain, a.bundle!());
    const id = parseNodeSpiffeId(uri);
    return id && a.tokens.has(id.node) ? id.node : undefined;
  } catch {
    return undefined;
  }
}
