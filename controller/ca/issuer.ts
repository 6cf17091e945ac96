// Workload certificates (X.509-SVIDs): a CSR from a node agent is checked (its signature, exactly
// one SPIFFE URI of our trust domain), authorized (that identity must run on the agent's node, as
// ztunnel's node authorization has it), and signed with a capped lifetime. Refusals are typed, so
// the service can log, count and report them.

import { AmbitError } from '../../shared/errors.js';
import { type Identity, nodeSpiffeId, parseNodeSpiffeId, parseSpiffeId, spiffeId } from '../../shared/identity/spiffe.js';
import { buildCertificate, isRsaKey, oidClientAuth, oidServerAuth, parseCsr, toPem } from '../../shared/identity/x509.js';
import type { Pod } from '../../shared/resources/types.js';
import type { ClusterReader } from '../kube/view.js';
import { type CertificateAuthority, KeyUsage, serial } from './authority.js';

export type RefusalReason = 'malformed-csr' | 'bad-identity' | 'wrong-trust-domain' | 'identity-not-on-node';

export class CsrRefused extends AmbitError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super('CsrRefused', message);
  }
}

export interface IssuedCertificate {
  /** The SPIFFE ID in the certificate. */
  id: string;
  /** Leaf first, then intermediates up to the root (not included). */
  chain: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
}

export interface IssuerOptions {
  ca: CertificateAuthority;
  trustDomain: string;
  /** The longest lifetime a workload certificate gets, whatever the agent asks. */
  maxTtlSeconds: number;
  defaultTtlSeconds: number;
}

/** Reads and checks a CSR, and returns the one URI it asks for. */
function readCsr(csrDer: Buffer): { uri: string; spkiDer: Buffer } {
  let parsed;
  try {
    parsed = parseCsr(csrDer);
  } catch (err) {
    throw new CsrRefused('malformed-csr', `the CSR is malformed or its signature does not verify: ${(err as Error).message}`);
  }
  if (parsed.uris.length !== 1) throw new CsrRefused('bad-identity', `a CSR must ask for exactly one URI SAN, found ${parsed.uris.length}`);
  return { uri: parsed.uris[0]!, spkiDer: parsed.spkiDer };
}

/** Reads and checks a CSR for a workload identity, and returns the identity it asks for. */
export function csrIdentity(csrDer: Buffer, trustDomain: string): { identity: Identity; spkiDer: Buffer } {
  const { uri, spkiDer } = readCsr(csrDer);
  const identity = parseSpiffeId(uri);
  if (!identity) throw new CsrRefused('bad-identity', `${uri} is not a workload SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`);
  if (identity.trustDomain !== trustDomain) throw new CsrRefused('wrong-trust-domain', `${uri} is not in the trust domain ${trustDomain}`);
  return { identity, spkiDer };
}

/** Node authorization: some pod with this identity is scheduled on the node. */
export function authorize(cluster: ClusterReader, node: string, identity: Identity): void {
  const onNode = (cluster.list('Pod', identity.namespace) as Pod[]).some((p) => p.spec.nodeName === node && (p.spec.serviceAccountName ?? 'default') === identity.serviceAccount);
  if (!onNode) throw new CsrRefused('identity-not-on-node', `node ${node} runs no pod with identity ${spiffeId(identity)}; an agent gets certificates only for its own node's pods`);
}

/** Signs a workload certificate for a pod of `node`, or the node's own certificate. */
export function issue(o: IssuerOptions, node: string, csrDer: Buffer, requestedTtlSeconds: number | undefined, cluster: ClusterReader): IssuedCertificate {
  const { uri, spkiDer } = readCsr(csrDer);
  const nodeId = parseNodeSpiffeId(uri);
  if (nodeId) {
    if (nodeId.trustDomain !== o.trustDomain || nodeId.node !== node) {
      throw new CsrRefused('identity-not-on-node', `node ${node} may have only its own node certificate (${nodeSpiffeId(o.trustDomain, node)}), not ${uri}`);
    }
    return signWith(o, uri, spkiDer, requestedTtlSeconds, [oidClientAuth]);
  }
  const { identity } = csrIdentity(csrDer, o.trustDomain);
  authorize(cluster, node, identity);
  return sign(o, identity, spkiDer, requestedTtlSeconds);
}

export function sign(o: IssuerOptions, identity: Identity, spkiDer: Buffer, requestedTtlSeconds?: number): IssuedCertificate {
  return signWith(o, spiffeId(identity), spkiDer, requestedTtlSeconds, [oidServerAuth, oidClientAuth]);
}

function signWith(o: IssuerOptions, uri: string, spkiDer: Buffer, requestedTtlSeconds: number | undefined, extKeyUsage: string[]): IssuedCertificate {
  const ttl = Math.max(1, Math.min(o.maxTtlSeconds, requestedTtlSeconds ?? o.defaultTtlSeconds));
  const now = Date.now();
  // A little backdating absorbs clock skew between nodes.
  const notBefore = new Date(now - Math.min(60_000, ttl * 100));
  const notAfter = new Date(now + ttl * 1000);
  const rsa = isRsaKey(spkiDer);
  const signer = o.ca.current;
  const serialBytes = serial();
  const der = buildCertificate({
    serial: serialBytes,
    issuerDer: signer.issuerDer,
    notBefore,
    notAfter,
    spkiDer,
    uris: [uri],
    isCA: false,
    // RSA keys also encipher (TLS 1.2 RSA key exchange); ECDSA keys only sign.
    keyUsage: KeyUsage.digitalSignature | (rsa ? KeyUsage.keyEncipherment : 0),
    extKeyUsage,
    authorityKeyId: signer.keyId,
    signingKey: signer.key,
  });
  return {
    id: uri,
    chain: [toPem(der, 'CERTIFICATE'), ...signer.chain],
    serial: serialBytes.toString('hex'),
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
  };
}
