// How the controller knows which node is calling. An agent first proves it with a ServiceAccount
// token bound to its node (as ztunnel proves itself to istiod), which the controller checks with
// the Kubernetes API's TokenReview (push/token-review.ts), and gets a node certificate
// (spiffe://<td>/ambit/node/<name>) with it; from then on it presents that certificate on the TLS
// connection instead, checked with the same validator as every SVID.

import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';
import { nodeHeader } from '../../shared/protocol/config.js';
import { parseNodeSpiffeId } from '../../shared/identity/spiffe.js';
import { type TrustBundle, validateSpiffeCertificate } from '../../shared/identity/svid.js';

export interface NodeAuth {
  node: string;
  via: 'token' | 'certificate';
}

/** Whether `token` proves `node`: undefined when it does, else why not (logged, never sent to the caller). */
export type TokenCheck = (node: string, token: string) => Promise<string | undefined>;

export interface Authenticator {
  checkToken: TokenCheck;
  /** The CA's current trust bundle, for node certificates. */
  bundle?: () => TrustBundle;
}

export type Authentication = { ok: true; auth: NodeAuth } | { ok: false; reason: string };

export async function authenticateNode(req: IncomingMessage, a: Authenticator): Promise<Authentication> {
  const fromCert = a.bundle ? certificateNode(req.socket as TLSSocket, a.bundle) : undefined;
  if (fromCert) return { ok: true, auth: { node: fromCert, via: 'certificate' } };
  const node = String(req.headers[nodeHeader] ?? '');
  if (!node) return { ok: false, reason: `no node certificate and no ${nodeHeader} header` };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) return { ok: false, reason: 'no node certificate and no bearer token' };
  const refused = await a.checkToken(node, m[1]!);
  return refused ? { ok: false, reason: refused } : { ok: true, auth: { node, via: 'token' } };
}

function certificateNode(socket: TLSSocket, bundle: () => TrustBundle): string | undefined {
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate;
  if (!peer?.raw) return undefined;
  const chain: Buffer[] = [];
  for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && chain.length < 5; c = c.issuerCertificate === c ? undefined : c.issuerCertificate) chain.push(c.raw);
  try {
    const { uri } = validateSpiffeCertificate(chain, bundle());
    return parseNodeSpiffeId(uri)?.node;
  } catch {
    return undefined;
  }
}

/**
 * A check against a fixed token per node, compared in constant time: for the push channel run
 * without a Kubernetes API (its unit tests, the push and CA benchmarks).
 */
export function fixedTokens(tokens: Map<string, string>): TokenCheck {
  return async (node, token) => {
    const want = Buffer.from(tokens.get(node) ?? '');
    const given = Buffer.from(token);
    return want.length && given.length === want.length && timingSafeEqual(given, want) ? undefined : `wrong token for node ${node}`;
  };
}
