// The one validator of X.509-SVIDs that every TLS endpoint of the project uses (the agent's
// inbound and outbound, the waypoint, the controller's agent channel). Checks, in order: the chain
// leads to a root of the trust bundle, the leaf is within its validity, it is not a CA, its key
// usage is that of a leaf (digitalSignature, no certificate or CRL signing), and it names exactly
// one URI, a spiffe:// workload identity of a known trust domain. Each failure is an SvidInvalid
// with a reason that logs and metrics can use as a label.

import { X509Certificate } from 'node:crypto';
import { AmbitError } from '../errors.js';
import { type Identity, parseSpiffeId } from './spiffe.js';
import { certificateFacts, fromPem } from './x509.js';

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

  constructor(entries: Record<string, string[]> = {}) {
    for (const [td, pems] of Object.entries(entries)) this.set(td, pems);
  }

  set(trustDomain: string, pems: string[]): void {
    this.roots.set(
      trustDomain,
      pems.flatMap((p) => fromPem(p)).map((d) => new X509Certificate(d)),
    );
  }

  rootsOf(trustDomain: string): X509Certificate[] | undefined {
    return this.roots.get(trustDomain);
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
  let certs: X509Certificate[];
  try {
    certs = chain.map((c) => (c instanceof X509Certificate ? c : new X509Certificate(c)));
  } catch (err) {
    throw new SvidInvalid('malformed', `a certificate does not parse: ${(err as Error).message}`);
  }
  const leaf = certs[0]!;
  let facts;
  try {
    facts = certificateFacts(leaf.raw);
  } catch (err) {
    throw new SvidInvalid('malformed', `the certificate's extensions do not parse: ${(err as Error).message}`);
  }
  // The identity's trust domain chooses the roots, so read the SAN before the chain.
  if (facts.uris.length === 0) throw new SvidInvalid('no-uri-san', 'the certificate has no URI SAN, so it names no SPIFFE identity');
  if (facts.uris.length > 1) throw new SvidInvalid('several-uri-sans', `the certificate has ${facts.uris.length} URI SANs; an SVID has exactly one`);
  const uri = facts.uris[0]!;
  const m = /^spiffe:\/\/([a-z0-9._-]+)\/\S+$/.exec(uri);
  if (!m) throw new SvidInvalid('not-spiffe', `the URI SAN ${uri} is not a spiffe:// ID`);
  const trustDomain = m[1]!;
  const roots = bundle.rootsOf(trustDomain);
  if (!roots?.length) throw new SvidInvalid('unknown-trust-domain', `the trust domain ${trustDomain} of ${uri} is not trusted here`);
  if (!chainsTo(certs, roots)) throw new SvidInvalid('untrusted-chain', `the certificate of ${uri} does not chain to a root of ${trustDomain}`);
  for (const mid of certs.slice(1)) {
    if (now.getTime() > Date.parse(mid.validTo) || now.getTime() < Date.parse(mid.validFrom)) {
      throw new SvidInvalid('untrusted-chain', `the intermediate ${mid.subject.replace(/\n/g, ', ')} in the chain of ${uri} is outside its validity`);
    }
  }
  if (now.getTime() > Date.parse(leaf.validTo)) throw new SvidInvalid('expired', `the certificate of ${uri} expired at ${new Date(leaf.validTo).toISOString()}`);
  if (now.getTime() < Date.parse(leaf.validFrom)) throw new SvidInvalid('not-yet-valid', `the certificate of ${uri} is not valid before ${new Date(leaf.validFrom).toISOString()}`);
  if (facts.isCA || leaf.ca) throw new SvidInvalid('is-ca', `the certificate of ${uri} is a CA certificate; an SVID must be a leaf`);
  const ku = facts.keyUsage;
  if (ku === undefined || !(ku & digitalSignature) || ku & (keyCertSign | cRLSign)) {
    throw new SvidInvalid('bad-key-usage', `the certificate of ${uri} must have key usage digitalSignature and not keyCertSign or cRLSign`);
  }
  return { uri, trustDomain };
}

/** Each certificate is signed by the next (which must be a CA), and the last by a root or is one. */
function chainsTo(certs: X509Certificate[], roots: X509Certificate[]): boolean {
  for (let i = 0; i < certs.length; i++) {
    const c = certs[i]!;
    if (roots.some((r) => r.raw.equals(c.raw))) return i > 0;
    const root = roots.find((r) => c.checkIssued(r) && c.verify(r.publicKey));
    if (root) return true;
    const next = certs[i + 1];
    if (!next || !next.ca || !c.checkIssued(next) || !c.verify(next.publicKey)) return false;
  }
  return false;
}
