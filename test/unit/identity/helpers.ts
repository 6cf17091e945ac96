// Test certificates: a root, an intermediate, and leaves that break one SVID rule at a time; CAs
// that break one rule of certification paths (RFC 5280 section 6) at a time.

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { implicit, oid, seq, Tag, tlv } from '../../../shared/identity/der.js';
import { buildCertificate, type CertificateTemplate, extension, keyId, oidClientAuth, oidServerAuth } from '../../../shared/identity/x509.js';

export interface TestCa {
  key: KeyObject;
  der: Buffer;
  name: Buffer;
  keyId: Buffer;
}

export const name = (cn: string) => seq(tlv(Tag.set, seq(oid('2.5.4.3'), tlv(Tag.utf8String, Buffer.from(cn)))));

/** A CA signed by `issuer` (self-signed without one), valid from an hour ago for two hours unless `overrides` say otherwise. */
export function makeCa(cn: string, issuer?: TestCa, overrides: Partial<CertificateTemplate> = {}): TestCa {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spkiDer = keys.publicKey.export({ type: 'spki', format: 'der' });
  const der = buildCertificate({
    serial: Buffer.from([1]),
    issuerDer: issuer?.name ?? name(cn),
    subjectDer: name(cn),
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 3600_000),
    spkiDer,
    isCA: true,
    keyUsage: 32 | 64,
    ...(issuer ? { authorityKeyId: issuer.keyId } : {}),
    signingKey: issuer?.key ?? keys.privateKey,
    ...overrides,
  });
  return { key: keys.privateKey, der, name: name(cn), keyId: keyId(spkiDer) };
}

export function makeLeaf(ca: TestCa, overrides: Partial<CertificateTemplate> = {}): Buffer {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return buildCertificate({
    serial: Buffer.from([0x42, 0x01]),
    issuerDer: ca.name,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    spkiDer: keys.publicKey.export({ type: 'spki', format: 'der' }),
    uris: ['spiffe://cluster.local/ns/shop/sa/web'],
    isCA: false,
    keyUsage: 1,
    extKeyUsage: [oidServerAuth, oidClientAuth],
    authorityKeyId: ca.keyId,
    signingKey: ca.key,
    ...overrides,
  });
}

/** An extension no implementation knows (a private OID, NULL value): when critical, a verifier must refuse the certificate. */
export const unknownExtension = (critical: boolean) => extension('1.3.6.1.4.1.99999.7.1', critical, tlv(Tag.null));

/** nameConstraints (critical, as RFC 5280 asks) permitting or excluding URIs whose host is one of `hosts`. */
export function uriNameConstraints(kind: 'permitted' | 'excluded', hosts: string[]): Buffer {
  const subtrees = hosts.map((h) => seq(tlv(implicit(6), Buffer.from(h, 'latin1'))));
  // permittedSubtrees [0], excludedSubtrees [1], both IMPLICIT SEQUENCE OF GeneralSubtree.
  return extension('2.5.29.30', true, seq(tlv(implicit(kind === 'permitted' ? 0 : 1) | 0x20, ...subtrees)));
}
