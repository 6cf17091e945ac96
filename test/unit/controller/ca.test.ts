// The CA: its own root persists across restarts with a private key file of mode 0600; an
// operator's intermediate (Istio's cacerts layout) signs with its chain; a root rotation keeps the
// previous root in the bundle for the overlap and then drops it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { sign } from '../../../controller/ca/issuer.js';
import { TrustBundle, validateSvid } from '../../../shared/identity/svid.js';
import { certificateFacts, fromPem, toPem } from '../../../shared/identity/x509.js';
import { makeCa, type TestCa, unknownExtension } from '../identity/helpers.js';

let dir = '';
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-ca-'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

const identity = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
const spki = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
const issueWith = (ca: CertificateAuthority) => sign({ ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 }, identity, spki());

test('the root is made once, kept with a 0600 key, and the same after a restart', () => {
  const a = CertificateAuthority.open(dir, 'cluster.local');
  assert.is(statSync(join(dir, 'root.key')).mode & 0o777, 0o600);
  const b = CertificateAuthority.open(dir, 'cluster.local');
  assert.is(b.rootPem, a.rootPem);
  const cert = issueWith(b);
  assert.ok(validateSvid(cert.chain.flatMap(fromPem), new TrustBundle({ 'cluster.local': a.trustBundle() })));
});

test("an operator's intermediate signs, and its chain leads to the operator's root", () => {
  const root = makeCa('corp root');
  const mid = makeCa('mesh intermediate', root);
  const plugged = join(dir, 'cacerts');
  mkdirSync(plugged);
  writeFileSync(join(plugged, 'ca-cert.pem'), toPem(mid.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'ca-key.pem'), mid.key.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(plugged, 'cert-chain.pem'), toPem(mid.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'root-cert.pem'), toPem(root.der, 'CERTIFICATE'));
  const ca = CertificateAuthority.open(dir, 'cluster.local');
  assert.ok(ca.operatorSupplied);
  const cert = issueWith(ca);
  assert.is(cert.chain.length, 2, 'leaf and intermediate');
  assert.ok(validateSvid(cert.chain.flatMap(fromPem), new TrustBundle({ 'cluster.local': ca.trustBundle() })));
  assert.throws(() => ca.rotateRoot('cluster.local', 1000), /operator-supplied cacerts/);
});

test('cacerts with a key that does not match, or a chain to another root, are refused by name', () => {
  const root = makeCa('corp root');
  const mid = makeCa('mesh intermediate', root);
  const plugged = join(dir, 'cacerts');
  mkdirSync(plugged);
  writeFileSync(join(plugged, 'ca-cert.pem'), toPem(mid.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'ca-key.pem'), makeCa('other').key.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(plugged, 'cert-chain.pem'), toPem(mid.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'root-cert.pem'), toPem(root.der, 'CERTIFICATE'));
  assert.throws(() => CertificateAuthority.open(dir, 'cluster.local'), /the CA key does not match the CA certificate/);
  writeFileSync(join(plugged, 'ca-key.pem'), mid.key.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(plugged, 'root-cert.pem'), toPem(makeCa('unrelated').der, 'CERTIFICATE'));
  assert.throws(() => CertificateAuthority.open(dir, 'cluster.local'), /do not lead to root-cert.pem/);
});

/** Istio's cacerts layout: cert-chain.pem is the intermediate, then the root. */
function plug(root: TestCa, mid: TestCa): void {
  const plugged = join(dir, 'cacerts');
  mkdirSync(plugged, { recursive: true });
  writeFileSync(join(plugged, 'ca-cert.pem'), toPem(mid.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'ca-key.pem'), mid.key.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(plugged, 'cert-chain.pem'), toPem(mid.der, 'CERTIFICATE') + toPem(root.der, 'CERTIFICATE'));
  writeFileSync(join(plugged, 'root-cert.pem'), toPem(root.der, 'CERTIFICATE'));
}

test("with Istio's cert-chain.pem (intermediate then root), issued SVIDs carry the root too and validate", () => {
  const root = makeCa('corp root');
  plug(root, makeCa('mesh intermediate', root));
  const ca = CertificateAuthority.open(dir, 'cluster.local');
  const cert = issueWith(ca);
  assert.is(cert.chain.length, 3, 'leaf, intermediate, root');
  assert.ok(validateSvid(cert.chain.flatMap(fromPem), new TrustBundle({ 'cluster.local': ca.trustBundle() })));
});

test('cacerts whose root has expired, or whose intermediate has an unknown critical extension, are refused at start with the reason', () => {
  const hour = 3600_000;
  const old = makeCa('expired corp root', undefined, { notBefore: new Date(Date.now() - 48 * hour), notAfter: new Date(Date.now() - 24 * hour) });
  plug(old, makeCa('mesh intermediate', old));
  assert.throws(() => CertificateAuthority.open(dir, 'cluster.local'), /do not lead to root-cert.pem \(certificate has expired, certificate 1 /);
  const root = makeCa('corp root');
  plug(root, makeCa('odd intermediate', root, { extensions: [unknownExtension(true)] }));
  assert.throws(() => CertificateAuthority.open(dir, 'cluster.local'), /do not lead to root-cert.pem \(unhandled critical extension, certificate 0 /);
});

test('a root rotation trusts both roots for the overlap, then only the new one', async () => {
  const ca = CertificateAuthority.open(dir, 'cluster.local');
  const old = issueWith(ca);
  ca.rotateRoot('cluster.local', 300);
  const fresh = issueWith(ca);
  const both = new TrustBundle({ 'cluster.local': ca.trustBundle() });
  assert.is(ca.trustBundle().length, 2);
  assert.ok(validateSvid(old.chain.flatMap(fromPem), both));
  assert.ok(validateSvid(fresh.chain.flatMap(fromPem), both));
  await new Promise((r) => setTimeout(r, 350));
  assert.ok(ca.expireRoots());
  const after = new TrustBundle({ 'cluster.local': ca.trustBundle() });
  assert.throws(() => validateSvid(old.chain.flatMap(fromPem), after), /does not chain/);
  assert.ok(validateSvid(fresh.chain.flatMap(fromPem), after));
});

test('an SVID for an ECDSA key may only sign; one for an RSA 2048 key may also encipher', () => {
  const ca = CertificateAuthority.open(dir, 'cluster.local');
  const issuer = { ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 };
  const ec = sign(issuer, identity, spki());
  const rsa = sign(issuer, identity, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
  assert.is(certificateFacts(fromPem(ec.chain[0]!)[0]!).keyUsage, 1);
  assert.is(certificateFacts(fromPem(rsa.chain[0]!)[0]!).keyUsage, 1 | 4);
  const bundle = new TrustBundle({ 'cluster.local': ca.trustBundle() });
  assert.ok(validateSvid(rsa.chain.flatMap(fromPem), bundle));
});

test('a requested lifetime above the cap gets the cap', () => {
  const ca = CertificateAuthority.open(dir, 'cluster.local');
  const c = sign({ ca, trustDomain: 'cluster.local', maxTtlSeconds: 600, defaultTtlSeconds: 300 }, identity, spki(), 86400 * 30);
  assert.ok(Date.parse(c.notAfter) - Date.now() <= 600_000);
});

test.run();
