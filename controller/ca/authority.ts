// The controller's certificate authority: a self-signed ECDSA P-256 root made on first start and
// kept in the state directory (key mode 0600). Today it signs the controller's own serving
// certificate for the agent channel; workload certificates (SVIDs) build on the same root.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/store.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const rootLifetimeMs = 10 * 365 * 24 * 3600 * 1000;

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export class CertificateAuthority {
  private constructor(
    private readonly key: CryptoKey,
    readonly root: x509.X509Certificate,
    readonly rootPem: string,
  ) {}

  /** Loads the root from `dir`, or makes and stores one there. */
  static async open(dir: string, trustDomain: string): Promise<CertificateAuthority> {
    const keyPath = join(dir, 'root.key');
    const certPath = join(dir, 'root.crt');
    if (existsSync(keyPath) && existsSync(certPath)) {
      const certPem = readFileSync(certPath, 'utf8');
      const key = await importKey(readFileSync(keyPath, 'utf8'));
      return new CertificateAuthority(key, new x509.X509Certificate(certPem), certPem);
    }
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `O=${trustDomain}, CN=ambit root CA`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + rootLifetimeMs),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeFileAtomic(keyPath, await exportKey(keys.privateKey), 0o600);
    const certPem = root.toString('pem');
    writeFileAtomic(certPath, certPem);
    return new CertificateAuthority(keys.privateKey, root, certPem);
  }

  /** A TLS server certificate for the controller itself, with the given IP and DNS names. */
  async issueServing(ips: string[], dnsNames: string[], lifetimeMs = 365 * 24 * 3600 * 1000): Promise<KeyAndCert> {
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${dnsNames[0] ?? ips[0]}`,
      issuer: this.root.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + lifetimeMs),
      publicKey: keys.publicKey,
      signingKey: this.key,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([...ips.map((value) => ({ type: 'ip' as const, value })), ...dnsNames.map((value) => ({ type: 'dns' as const, value }))], false),
        await x509.AuthorityKeyIdentifierExtension.create(this.root, false),
      ],
    });
    return { keyPem: await exportKey(keys.privateKey), certPem: cert.toString('pem') };
  }
}

/** 16 random bytes with the top bit clear: a positive serial, as RFC 5280 asks. */
function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b.toString('hex');
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
}
