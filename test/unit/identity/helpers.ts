// Test certificates: a root, an intermediate, and leaves that break one SVID rule at a time.

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { oid, seq, Tag, tlv } from '../../../shared/identity/der.js';
import { buildCertificate, type CertificateTemplate, keyId, oidClientAuth, oidServerAuth } from '../../../shared/identity/x509.js';

export interface TestCa {
  key: KeyObject;
  der: Buffer;
  name: Buffer;
  keyId: Buffer;
}

export const name = (cn: string) => seq(tlv(Tag.set, seq(oid('2.5.4.3'), tlv(Tag.utf8String, Buffer.from(cn)))));

export function makeCa(cn: string, issuer?: TestCa): TestCa {
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
