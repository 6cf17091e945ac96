// Building and reading the X.509 objects of the mesh: CSRs (PKCS #10) and certificates, written
// and read as DER directly (der.ts), signed and verified with Node's native crypto (ECDSA P-256
// or RSA 2048). Synchronous and allocation-light, since the CA signs thousands a second; the
// schema-driven ASN.1 libraries cost 400-750 us per object and about 17 MB in every agent. Tests
// check the output with @peculiar/asn1-x509 and openssl; scripts/bench/ca-issuance.ts measures it.

import { type KeyObject, sign, verify, createHash } from 'node:crypto';
import { bitString, boolTrue, children, expect, explicit, implicit, octetString, oid, oidText, read, seq, Tag, time, tlv, uint } from './der.js';

const oidEcdsaSha256 = '1.2.840.10045.4.3.2';
const oidRsaSha256 = '1.2.840.113549.1.1.11';
const oidExtensionRequest = '1.2.840.113549.1.9.14';
// RFC 5280's extensions.
const oidSubjectAltName = '2.5.29.17';
const oidBasicConstraints = '2.5.29.19';
const oidKeyUsage = '2.5.29.15';
const oidExtKeyUsage = '2.5.29.37';
const oidSubjectKeyId = '2.5.29.14';
const oidAuthorityKeyId = '2.5.29.35';
export const oidServerAuth = '1.3.6.1.5.5.7.3.1';
export const oidClientAuth = '1.3.6.1.5.5.7.3.2';

export function toPem(der: Uint8Array | ArrayBuffer, label: 'CERTIFICATE' | 'CERTIFICATE REQUEST'): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/** Every DER block of a PEM text (a chain has several). */
export function fromPem(pem: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of pem.matchAll(/-----BEGIN [A-Z ]+-----([\s\S]*?)-----END [A-Z ]+-----/g)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}

/** A PKCS #10 request for one SPIFFE ID, signed with the private key that stays on the node. */
export function buildCsr(privateKey: KeyObject, publicKey: KeyObject, uri: string): Buffer {
  // RFC 5280: the SAN is critical when the subject name is empty, as it is in an SVID.
  const extensions = seq(extension(oidSubjectAltName, true, generalNames([uri], [], [])));
  const info = seq(
    uint(Buffer.from([0])),
    emptyName,
    publicKey.export({ type: 'spki', format: 'der' }),
    // attributes [0] IMPLICIT SET OF Attribute: one extensionRequest holding the extensions.
    tlv(implicit(0) | 0x20, seq(oid(oidExtensionRequest), tlv(Tag.set, extensions))),
  );
  const alg = privateKey.asymmetricKeyType === 'rsa' ? algRsa : algEcdsa;
  return seq(info, alg, bitString(sign('sha256', info, privateKey)));
}

export interface ParsedCsr {
  spkiDer: Buffer;
  uris: string[];
}

/**
 * Reads a CSR and checks its signature (proof that the requester holds the key). Throws DerError
 * or Error on anything malformed or a signature that does not verify.
 */
export function parseCsr(der: Buffer): ParsedCsr {
  const top = children(expect(read(der), Tag.sequence, 'CertificationRequest'));
  const infoEl = expect(top[0], Tag.sequence, 'certificationRequestInfo');
  const sigAlg = oidText(expect(children(expect(top[1], Tag.sequence, 'signatureAlgorithm'))[0], Tag.oid, 'signature algorithm'));
  const sig = expect(top[2], Tag.bitString, 'signature').value.subarray(1);
  const info = children(infoEl);
  const spkiDer = Buffer.from(expect(info[2], Tag.sequence, 'subjectPKInfo').raw);
  if (sigAlg !== oidEcdsaSha256 && sigAlg !== oidRsaSha256) throw new Error(`unsupported CSR signature algorithm ${sigAlg}`);
  // Verify over the bytes as received: re-encoding could differ from what was signed.
  if (!verify('sha256', infoEl.raw, { key: spkiDer, format: 'der', type: 'spki' }, sig)) throw new Error('the CSR signature does not verify with its own public key');
  const uris: string[] = [];
  const attrs = info[3];
  if (attrs && attrs.tag === explicit(0)) {
    for (const attr of children(attrs)) {
      const [type, values] = children(attr);
      if (!type || oidText(type) !== oidExtensionRequest || !values) continue;
      for (const exts of children(values)) {
        for (const ext of children(exts)) {
          const parts = children(ext);
          if (oidText(parts[0]!) !== oidSubjectAltName) continue;
          const names = read(expect(parts[parts.length - 1], Tag.octetString, 'extnValue').value);
          for (const name of children(names)) if (name.tag === implicit(6)) uris.push(name.value.toString('latin1'));
        }
      }
    }
  }
  return { spkiDer, uris };
}

export interface CertificateTemplate {
  serial: Buffer;
  /** The issuer's subject Name, DER. */
  issuerDer: Buffer;
  /** Empty for SVIDs, whose identity is in the SAN. */
  subjectDer?: Buffer;
  notBefore: Date;
  notAfter: Date;
  spkiDer: Buffer;
  uris?: string[];
  dns?: string[];
  /** IPv4 addresses. */
  ips?: string[];
  isCA: boolean;
  /** basicConstraints pathLenConstraint of a CA: how many CAs may follow it in a path. */
  pathLen?: number;
  keyUsage: number;
  extKeyUsage?: string[];
  /** Further extensions, each a DER Extension (see `extension`), appended as they are. */
  extensions?: Buffer[];
  /** Subject key id of the issuer, for the authority key identifier. */
  authorityKeyId?: Buffer;
  signingKey: KeyObject;
}

const emptyName = seq();
const algEcdsa = seq(oid(oidEcdsaSha256));
const algRsa = seq(oid(oidRsaSha256), tlv(Tag.null));

/** KeyUsage is a BIT STRING whose bit 0 is the most significant bit of the first byte. */
function keyUsageBits(flags: number): Buffer {
  // @peculiar/asn1-x509's KeyUsageFlags number bit 0 (digitalSignature) as 1, bit 1 as 2, ...
  let reversed = 0;
  for (let bit = 0; bit < 9; bit++) if (flags & (1 << bit)) reversed |= 1 << (15 - bit);
  const bytes = Buffer.from([reversed >> 8, reversed & 0xff]);
  const used = bytes[1] ? 2 : 1;
  const last = bytes[used - 1]!;
  let unused = 0;
  while (unused < 7 && !(last & (1 << unused))) unused++;
  return bitString(bytes.subarray(0, used), unused);
}

/** An Extension: its OID, the critical flag when set, and the DER value wrapped in an OCTET STRING. */
export function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), boolTrue, octetString(value)) : seq(oid(id), octetString(value));
}

function generalNames(uris: string[], dns: string[], ips: string[]): Buffer {
  return seq(
    ...uris.map((u) => tlv(implicit(6), Buffer.from(u, 'latin1'))),
    ...dns.map((d) => tlv(implicit(2), Buffer.from(d, 'latin1'))),
    ...ips.map((ip) => tlv(implicit(7), Buffer.from(ip.split('.').map(Number)))),
  );
}

/** A certificate, written directly as DER and signed (ECDSA P-256 or RSA, SHA-256). */
export function buildCertificate(t: CertificateTemplate): Buffer {
  const alg = t.signingKey.asymmetricKeyType === 'rsa' ? algRsa : algEcdsa;
  const exts = [
    extension(oidBasicConstraints, true, t.isCA ? seq(boolTrue, ...(t.pathLen === undefined ? [] : [uint(Buffer.from([t.pathLen]))])) : seq()),
    extension(oidKeyUsage, true, keyUsageBits(t.keyUsage)),
  ];
  if (t.extKeyUsage?.length) exts.push(extension(oidExtKeyUsage, false, seq(...t.extKeyUsage.map(oid))));
  // RFC 5280: the SAN is critical when the subject name is empty, as it is in an SVID.
  if (t.uris?.length || t.dns?.length || t.ips?.length) exts.push(extension(oidSubjectAltName, !t.subjectDer, generalNames(t.uris ?? [], t.dns ?? [], t.ips ?? [])));
  exts.push(extension(oidSubjectKeyId, false, octetString(keyId(t.spkiDer))));
  if (t.authorityKeyId) exts.push(extension(oidAuthorityKeyId, false, seq(tlv(implicit(0), t.authorityKeyId))));
  if (t.extensions) exts.push(...t.extensions);
  const tbs = seq(
    tlv(explicit(0), uint(Buffer.from([2]))),
    uint(t.serial),
    alg,
    t.issuerDer,
    seq(time(t.notBefore), time(t.notAfter)),
    t.subjectDer ?? emptyName,
    t.spkiDer,
    tlv(explicit(3), seq(...exts)),
  );
  return seq(tbs, alg, bitString(sign('sha256', tbs, t.signingKey)));
}

/** Whether a SubjectPublicKeyInfo holds an RSA key (rsaEncryption), read from its algorithm OID. */
export function isRsaKey(spkiDer: Buffer): boolean {
  const alg = children(expect(children(read(spkiDer))[0], Tag.sequence, 'algorithm'))[0];
  return oidText(expect(alg, Tag.oid, 'algorithm OID')) === '1.2.840.113549.1.1.1';
}

/** RFC 5280's method 1: SHA-1 of the subject public key bits. */
export function keyId(spkiDer: Buffer): Buffer {
  const key = expect(children(read(spkiDer))[1], Tag.bitString, 'subjectPublicKey');
  return createHash('sha1').update(key.value.subarray(1)).digest();
}

/** The subject Name of a certificate, DER, to be the issuer of the certificates it signs. */
export function subjectOf(certDer: Buffer): Buffer {
  const tbs = children(children(read(certDer))[0]!);
  // version [0] is present in v3 certificates: serial, signature, issuer, validity, subject.
  const offset = tbs[0]!.tag === explicit(0) ? 1 : 0;
  return Buffer.from(tbs[offset + 4]!.raw);
}

export interface CertificateFacts {
  isCA: boolean;
  /** KeyUsage flags numbered as in CertificateTemplate; undefined when the extension is absent. */
  keyUsage: number | undefined;
  uris: string[];
  dns: string[];
}

/** The extensions the mesh decides on, read straight from the DER. Throws DerError when malformed. */
export function certificateFacts(der: Buffer): CertificateFacts {
  const tbs = children(children(read(der))[0]!);
  const facts: CertificateFacts = { isCA: false, keyUsage: undefined, uris: [], dns: [] };
  const extsEl = tbs.find((e) => e.tag === explicit(3));
  if (!extsEl) return facts;
  for (const ext of children(expect(children(extsEl)[0], Tag.sequence, 'extensions'))) {
    const parts = children(ext);
    const id = oidText(expect(parts[0], Tag.oid, 'extnID'));
    const value = read(expect(parts[parts.length - 1], Tag.octetString, 'extnValue').value);
    if (id === oidBasicConstraints) {
      const first = children(value)[0];
      facts.isCA = first?.tag === Tag.boolean && first.value[0] !== 0;
    } else if (id === oidKeyUsage) {
      const bytes = expect(value, Tag.bitString, 'keyUsage').value.subarray(1);
      let flags = 0;
      for (let bit = 0; bit < bytes.length * 8 && bit < 9; bit++) if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) flags |= 1 << bit;
      facts.keyUsage = flags;
    } else if (id === oidSubjectAltName) {
      for (const name of children(value)) {
        if (name.tag === implicit(6)) facts.uris.push(name.value.toString('latin1'));
        else if (name.tag === implicit(2)) facts.dns.push(name.value.toString('latin1'));
      }
    }
  }
  return facts;
}
