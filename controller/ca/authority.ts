// The controller's certificate authority. Its signing certificate is either a self-signed ECDSA
// P-256 root made on first start (key file mode 0600), or an intermediate the operator supplies
// the way Istio's `cacerts` secret does (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem in
// one directory). The trust bundle is the current root plus, after a rotation, the previous roots
// until their overlap period ends, so certificates from either keep verifying meanwhile.

import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../../shared/errors.js';
import { oid, seq, Tag, tlv } from '../../shared/identity/der.js';
import { buildCertificate, fromPem, keyId, oidServerAuth, subjectOf, toPem } from '../../shared/identity/x509.js';
import { X509TrustStore } from '../../native/openssl.js';
import { writeFileAtomic } from '../store/store.js';

const rootLifetimeMs = 10 * 365 * 24 * 3600 * 1000;
/** KeyUsage flags as @peculiar/asn1-x509 numbers them. */
export const KeyUsage = { digitalSignature: 1, keyEncipherment: 4, keyCertSign: 32, cRLSign: 64 } as const;

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export interface Signer {
  key: KeyObject;
  /** The signing certificate, DER. */
  cert: Buffer;
  /** Certificates from the signing one up to (not including) the root, PEM, for chains. */
  chain: string[];
  issuerDer: Buffer;
  keyId: Buffer;
}

export class CertificateAuthority {
  private constructor(
    private readonly dir: string,
    private signer: Signer,
    private roots: string[],
    readonly operatorSupplied: boolean,
  ) {}

  /** Loads the CA from `dir`: operator-supplied `cacerts/` first, else its own root, made if missing. */
  static open(dir: string, trustDomain: string): CertificateAuthority {
    mkdirSync(dir, { recursive: true });
    const plugged = join(dir, 'cacerts');
    if (existsSync(join(plugged, 'ca-cert.pem'))) return CertificateAuthority.fromCacerts(dir, plugged);
    if (!existsSync(join(dir, 'root.key')) || !existsSync(join(dir, 'root.crt'))) makeRoot(dir, trustDomain);
    const ca = new CertificateAuthority(dir, loadSigner(readFileSync(join(dir, 'root.key'), 'utf8'), readFileSync(join(dir, 'root.crt'), 'utf8'), []), [], false);
    ca.roots = ca.currentRoots();
    return ca;
  }

  private static fromCacerts(dir: string, plugged: string): CertificateAuthority {
    const read = (f: string) => {
      const p = join(plugged, f);
      if (!existsSync(p)) throw new AmbitError('CaConfig', `${p} is missing: cacerts needs ca-cert.pem, ca-key.pem, cert-chain.pem and root-cert.pem`);
      return readFileSync(p, 'utf8');
    };
    const chain = fromPem(read('cert-chain.pem')).map((d) => toPem(d, 'CERTIFICATE'));
    const signer = loadSigner(read('ca-key.pem'), read('ca-cert.pem'), chain);
    const roots = fromPem(read('root-cert.pem')).map((d) => toPem(d, 'CERTIFICATE'));
    // The chain must lead to the root by the rules every agent applies (OpenSSL's path validation:
    // an expired root, a pathLen or name constraint that leaves no room for the intermediate), or
    // every workload certificate would be refused; better said once here than on every connection.
    let store: X509TrustStore;
    try {
      store = new X509TrustStore(roots.flatMap(fromPem));
    } catch (err) {
      throw new AmbitError('CaConfig', `${join(plugged, 'root-cert.pem')}: ${(err as Error).message}`);
    }
    const verdict = store.verify([signer.cert, ...chain.flatMap(fromPem)], Date.now() / 1000);
    if (!verdict.ok) {
      throw new AmbitError('CaConfig', `${plugged}: ca-cert.pem and cert-chain.pem do not lead to root-cert.pem (${verdict.reason}, certificate ${verdict.depth} of the path from ca-cert.pem); fix or replace the files and restart`);
    }
    return new CertificateAuthority(dir, signer, roots, true);
  }

  /** Reads the directory again: another replica rotated the root, and its Secret was mirrored here. */
  reload(trustDomain: string): void {
    const fresh = CertificateAuthority.open(this.dir, trustDomain);
    this.signer = fresh.signer;
    this.roots = fresh.roots;
  }

  get current(): Signer {
    return this.signer;
  }

  /** The roots agents should trust, PEM: the current one first. */
  trustBundle(): string[] {
    return this.roots;
  }

  get rootPem(): string {
    return this.roots[0]!;
  }

  /**
   * Makes a new self-signed root and signs with it from now on. The previous root stays in the
   * trust bundle for `overlapMs`, long enough for every workload certificate it signed to rotate.
   */
  rotateRoot(trustDomain: string, overlapMs: number): void {
    if (this.operatorSupplied) throw new AmbitError('CaConfig', 'the CA uses operator-supplied cacerts; rotate them by replacing the files and restarting the controller');
    const previous = join(this.dir, 'previous');
    mkdirSync(previous, { recursive: true });
    renameSync(join(this.dir, 'root.crt'), join(previous, `${Date.now() + overlapMs}.crt`));
    rmSync(join(this.dir, 'root.key'));
    makeRoot(this.dir, trustDomain);
    this.signer = loadSigner(readFileSync(join(this.dir, 'root.key'), 'utf8'), readFileSync(join(this.dir, 'root.crt'), 'utf8'), []);
    this.roots = this.currentRoots();
  }

  /** Drops previous roots whose overlap has ended; returns true when the bundle changed. */
  expireRoots(): boolean {
    if (this.operatorSupplied) return false;
    const before = this.roots.length;
    this.roots = this.currentRoots();
    return this.roots.length !== before;
  }

  private currentRoots(): string[] {
    const roots = [readFileSync(join(this.dir, 'root.crt'), 'utf8')];
    const previous = join(this.dir, 'previous');
    if (!existsSync(previous)) return roots;
    for (const f of readdirSync(previous).sort()) {
      if (Number(f.split('.')[0]) > Date.now()) roots.push(readFileSync(join(previous, f), 'utf8'));
      else rmSync(join(previous, f));
    }
    return roots;
  }

  /** A TLS server certificate for the controller itself. */
  issueServing(ips: string[], dnsNames: string[], lifetimeMs = 365 * 24 * 3600 * 1000): KeyAndCert {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const now = Date.now();
    const der = buildCertificate({
      serial: serial(),
      issuerDer: this.signer.issuerDer,
      subjectDer: commonName(dnsNames[0] ?? ips[0] ?? 'ambit-controller'),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + lifetimeMs),
      spkiDer: keys.publicKey.export({ type: 'spki', format: 'der' }),
      dns: dnsNames,
      ips,
      isCA: false,
      keyUsage: KeyUsage.digitalSignature,
      extKeyUsage: [oidServerAuth],
      authorityKeyId: this.signer.keyId,
      signingKey: this.signer.key,
    });
    return { keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, certPem: [toPem(der, 'CERTIFICATE'), ...this.signer.chain].join('') };
  }
}

function makeRoot(dir: string, trustDomain: string): void {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = seq(
    tlv(Tag.set, seq(oid('2.5.4.10'), tlv(Tag.utf8String, Buffer.from(trustDomain)))),
    tlv(Tag.set, seq(oid('2.5.4.3'), tlv(Tag.utf8String, Buffer.from(`ambit root CA ${new Date().toISOString().slice(0, 10)}`)))),
  );
  const spkiDer = keys.publicKey.export({ type: 'spki', format: 'der' });
  const now = Date.now();
  const der = buildCertificate({
    serial: serial(),
    issuerDer: name,
    subjectDer: name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + rootLifetimeMs),
    spkiDer,
    isCA: true,
    keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign,
    signingKey: keys.privateKey,
  });
  writeFileAtomic(join(dir, 'root.key'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeFileAtomic(join(dir, 'root.crt'), toPem(der, 'CERTIFICATE'));
}

function loadSigner(keyPem: string, certPem: string, chain: string[]): Signer {
  const key = createPrivateKey(keyPem);
  const cert = fromPem(certPem)[0];
  if (!cert) throw new AmbitError('CaConfig', 'the CA certificate file holds no certificate');
  const x = new X509Certificate(cert);
  if (!x.ca) throw new AmbitError('CaConfig', 'the CA certificate is not a CA (basicConstraints CA:FALSE)');
  if (!x.checkPrivateKey(key)) throw new AmbitError('CaConfig', 'the CA key does not match the CA certificate');
  return { key, cert, chain, issuerDer: subjectOf(cert), keyId: keyId(x.publicKey.export({ type: 'spki', format: 'der' })) };
}

function commonName(cn: string): Buffer {
  return seq(tlv(Tag.set, seq(oid('2.5.4.3'), tlv(Tag.utf8String, Buffer.from(cn)))));
}

/** 16 random bytes with the top bit clear: a positive serial, as RFC 5280 asks. */
export function serial(): Buffer {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b;
}
