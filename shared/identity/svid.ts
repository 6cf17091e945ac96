// The one validator of X.509-SVIDs that every TLS endpoint of the project uses (the agent's
// inbound and outbound, the waypoint, the controller's agent channel). The certification path is
// OpenSSL's to judge (native/openssl.ts: X509_verify_cert against the roots of the SVID's own trust
// domain, so critical extensions, name constraints, path lengths and every certificate's validity,
// the root's included, are checked as `openssl verify` checks them). On top, SPIFFE's rules for a
// leaf: exactly one URI SAN, a spiffe:// ID of a trusted trust domain, not a CA, key usage
// digitalSignature without certificate or CRL signing. Each failure is an SvidInvalid with a reason
// that logs and metrics can use as a label.

import { X509Certificate } from 'node:crypto';
import { AmbitError } from '../errors.js';
import { type Identity, parseSpiffeId } from './spiffe.js';
import { certificateFacts, fromPem } from './x509.js';
import { type PathVerdict, verifyErrors, X509TrustStore } from '../../native/openssl.js';

export type SvidFailure =
  | 'malformed'
  | 'untrusted-chain'
  | 'expired'
  | 'not-yet-valid'
  | 'is-ca'
  | 'bad-key-usage'
  | 'no-uri-san'
  | 'several-uri-sans'
  | 'not-spiffe'
  | 'unknown-trust-domain';

export class SvidInvalid extends AmbitError {
  constructor(
    readonly reason: SvidFailure,
    message: string,
  ) {
    super('SvidInvalid', message);
  }
}

/** Trusted roots by trust domain. */
export class TrustBundle {
  private readonly roots = new Map<string, X509Certificate[]>();
  /** OpenSSL stores, one per trust domain, made on first use: a bundle is built once per change of roots. */
  private readonly stores = new Map<string, X509TrustStore>();

  constructor(entries: Record<string, string[]> = {}) {
    for (const [td, pems] of Object.entries(entries)) this.set(td, pems);
  }

  set(trustDomain: string, pems: string[]): void {
    this.roots.set(
      trustDomain,
      pems.flatMap((p) => fromPem(p)).map((d) => new X509Certificate(d)),
    );
    this.stores.delete(trustDomain);
  }

  rootsOf(trustDomain: string): X509Certificate[] | undefined {
    return this.roots.get(trustDomain);
  }

  /** The trust anchors of one trust domain for path validation, or undefined when it has none. */
  storeOf(trustDomain: string): X509TrustStore | undefined {
    let store = this.stores.get(trustDomain);
    if (store) return store;
    const roots = this.roots.get(trustDomain);
    if (!roots?.length) return undefined;
    store = new X509TrustStore(roots.map((r) => r.raw));
    this.stores.set(trustDomain, store);
    return store;
  }

  all(): X509Certificate[] {
    return [...this.roots.values()].flat();
  }

  /** PEM text of every root, for a TLS `ca` option. */
  pems(): string[] {
    return this.all().map((c) => c.toString());
  }
}

const digitalSignature = 1;
const keyCertSign = 32;
const cRLSign = 64;
const maxChain = 5;

/**
 * Validates a presented chain (leaf first, DER or X509Certificate) and returns the workload
 * identity. `now` is for tests.
 */
export function validateSvid(chain: (Buffer | X509Certificate)[], bundle: TrustBundle, now = new Date()): Identity {
  const { uri } = validateSpiffeCertificate(chain, bundle, now);
  const identity = parseSpiffeId(uri);
  if (!identity) throw new SvidInvalid('not-spiffe', `${uri} is not a workload SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`);
  return identity;
}

/**
 * Every rule but the workload form of the ID: what a node certificate (spiffe://<td>/ambit/node/<name>)
 * must also pass. Returns the SPIFFE ID and its trust domain.
 */
export function validateSpiffeCertificate(chain: (Buffer | X509Certificate)[], bundle: TrustBundle, now = new Date()): { uri: string; trustDomain: string } {
  if (chain.length === 0) throw new SvidInvalid('malformed', 'no certificate was presented');
  if (chain.length > maxChain) throw new SvidInvalid('malformed', `a chain of ${chain.length} certificates is longer than ${maxChain}`);
  const ders = chain.map((c) => (c instanceof X509Certificate ? c.raw : c));
  let facts;
  try {
    facts = certificateFacts(ders[0]!);
  } catch (err) {
    throw new SvidInvalid('malformed', `the certificate or its extensions do not parse: ${(err as Error).message}`);
  }
  // The identity's trust domain chooses the roots, so read the SAN before the chain.
  if (facts.uris.length === 0) throw new SvidInvalid('no-uri-san', 'the certificate has no URI SAN, so it names no SPIFFE identity');
  if (facts.uris.length > 1) throw new SvidInvalid('several-uri-sans', `the certificate has ${facts.uris.length} URI SANs; an SVID has exactly one`);
  const uri = facts.uris[0]!;
  const m = /^spiffe:\/\/([a-z0-9._-]+)\/\S+$/.exec(uri);
  if (!m) throw new SvidInvalid('not-spiffe', `the URI SAN ${uri} is not a spiffe:// ID`);
  const trustDomain = m[1]!;
  const store = bundle.storeOf(trustDomain);
  if (!store) throw new SvidInvalid('unknown-trust-domain', `the trust domain ${trustDomain} of ${uri} is not trusted here`);
  const verdict = store.verify(ders, now.getTime() / 1000);
  if (!verdict.ok) throw pathRefusal(verdict, ders, uri, trustDomain);
  if (facts.isCA) throw new SvidInvalid('is-ca', `the certificate of ${uri} is a CA certificate; an SVID must be a leaf`);
  const ku = facts.keyUsage;
  if (ku === undefined || !(ku & digitalSignature) || ku & (keyCertSign | cRLSign)) {
    throw new SvidInvalid('bad-key-usage', `the certificate of ${uri} must have key usage digitalSignature and not keyCertSign or cRLSign`);
  }
  return { uri, trustDomain };
}

/** The leaf's own validity keeps its reasons; anything wrong above it means no trusted path. */
function pathRefusal(v: Exclude<PathVerdict, { ok: true }>, ders: Buffer[], uri: string, trustDomain: string): SvidInvalid {
  if (v.code === -1) return new SvidInvalid('malformed', `certificate ${v.depth} of the chain of ${uri}: ${v.reason}`);
  if (v.depth === 0 && v.code === verifyErrors.certHasExpired) return new SvidInvalid('expired', `the certificate of ${uri} has expired (${v.reason})`);
  if (v.depth === 0 && v.code === verifyErrors.certNotYetValid) return new SvidInvalid('not-yet-valid', `the certificate of ${uri} is not valid yet (${v.reason})`);
  return new SvidInvalid('untrusted-chain', `the certificate of ${uri} does not chain to a root of ${trustDomain}: ${v.reason}, at ${pathPosition(v.depth, ders)}`);
}

/** Names the certificate at `depth` of the path OpenSSL built: the presented ones first, then the root from the bundle. */
function pathPosition(depth: number, ders: Buffer[]): string {
  if (depth === 0) return 'the leaf';
  const der = ders[depth];
  if (!der) return depth < 0 ? 'the chain' : 'the root';
  try {
    return `${new X509Certificate(der).subject.replace(/\n/g, ', ')} (certificate ${depth})`;
  } catch {
    return `certificate ${depth}`;
  }
}
