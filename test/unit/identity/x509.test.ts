// What the DER writer and reader make is read the same by an independent ASN.1 library and by
// openssl; tampered or truncated input is refused, never misread.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { buildCsr, certificateFacts, parseCsr, toPem } from '../../../shared/identity/x509.js';
import { makeCa, makeLeaf } from './helpers.js';

const root = makeCa('root');

test('a certificate reads back the same in @peculiar/asn1-x509, Node and openssl', () => {
  const leaf = makeLeaf(root, { dns: ['web.shop'], ips: ['10.244.1.3'] });
  const cert = AsnConvert.parse(leaf, asn.Certificate);
  const ext = (id: string) => cert.tbsCertificate.extensions!.find((e) => e.extnID === id)!;
  assert.is(AsnConvert.parse(ext(asn.id_ce_basicConstraints).extnValue.buffer, asn.BasicConstraints).cA, false);
  assert.ok(ext(asn.id_ce_keyUsage).critical);
  assert.is(AsnConvert.parse(ext(asn.id_ce_keyUsage).extnValue.buffer, asn.KeyUsage).toNumber(), asn.KeyUsageFlags.digitalSignature);
  const sans = AsnConvert.parse(ext(asn.id_ce_subjectAltName).extnValue.buffer, asn.SubjectAlternativeName);
  assert.equal(Array.from(sans, (n) => n.uniformResourceIdentifier ?? n.dNSName ?? n.iPAddress), ['spiffe://cluster.local/ns/shop/sa/web', 'web.shop', '10.244.1.3']);
  const x = new X509Certificate(leaf);
  assert.ok(x.verify(new X509Certificate(root.der).publicKey));
  assert.equal(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.equal(certificateFacts(leaf), { isCA: false, keyUsage: 1, uris: ['spiffe://cluster.local/ns/shop/sa/web'], dns: ['web.shop'] });
  const dir = mkdtempSync(join(tmpdir(), 'ambit-x509-'));
  try {
    writeFileSync(join(dir, 'root.pem'), toPem(root.der, 'CERTIFICATE'));
    writeFileSync(join(dir, 'leaf.pem'), toPem(leaf, 'CERTIFICATE'));
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' }), 'leaf.pem: OK');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a CSR carries its SPIFFE ID and public key; a tampered one is refused', () => {
  for (const type of ['ec', 'rsa'] as const) {
    const keys = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const csr = buildCsr(keys.privateKey, keys.publicKey, 'spiffe://cluster.local/ns/shop/sa/web');
    const parsed = parseCsr(csr);
    assert.equal(parsed.uris, ['spiffe://cluster.local/ns/shop/sa/web']);
    assert.ok(parsed.spkiDer.equals(keys.publicKey.export({ type: 'spki', format: 'der' })));
    const tampered = Buffer.from(csr);
    const at = tampered.indexOf(Buffer.from('/sa/web'));
    tampered[at + 4] = 'x'.charCodeAt(0);
    assert.throws(() => parseCsr(tampered), /does not verify/);
  }
});

test('truncated or random input is refused with an error, at every length', () => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = buildCsr(keys.privateKey, keys.publicKey, 'spiffe://cluster.local/ns/shop/sa/web');
  for (let n = 0; n < csr.length; n++) assert.throws(() => parseCsr(csr.subarray(0, n)));
  for (let i = 0; i < 200; i++) assert.throws(() => parseCsr(Buffer.from(Array.from({ length: 50 + i }, () => Math.floor(Math.random() * 256)))));
});

test.run();
