// The SVID validator: a valid SVID passes, and each certificate below breaks exactly one rule and
// is refused with that rule's reason.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SvidInvalid, TrustBundle, validateSvid } from '../../../shared/identity/svid.js';
import { toPem } from '../../../shared/identity/x509.js';
import { makeCa, makeLeaf } from './helpers.js';

const root = makeCa('root');
const bundle = new TrustBundle({ 'cluster.local': [toPem(root.der, 'CERTIFICATE')] });

function reason(chain: Buffer[]): string {
  try {
    validateSvid(chain, bundle);
    return 'valid';
  } catch (err) {
    assert.instance(err, SvidInvalid);
    return (err as SvidInvalid).reason;
  }
}

test('a valid SVID gives its identity', () => {
  assert.equal(validateSvid([makeLeaf(root)], bundle), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
});

test('signed by another CA: untrusted-chain', () => {
  assert.is(reason([makeLeaf(makeCa('other'))]), 'untrusted-chain');
});

test('through an intermediate: valid with the intermediate presented, untrusted without it', () => {
  const mid = makeCa('intermediate', root);
  const leaf = makeLeaf(mid);
  assert.is(reason([leaf, mid.der]), 'valid');
  assert.is(reason([leaf]), 'untrusted-chain');
});

test('through an intermediate that has expired: untrusted-chain', () => {
  const mid = makeCa('old intermediate', root);
  const leaf = makeLeaf(mid);
  assert.is(reason([leaf, mid.der]), 'valid');
  const later = new Date(Date.now() + 2 * 3600_000); // the test CAs live an hour
  try {
    validateSvid([leaf, mid.der], bundle, later);
    assert.unreachable();
  } catch (err) {
    // The leaf has expired too by then; the chain is checked first.
    assert.is((err as SvidInvalid).reason, 'untrusted-chain');
  }
});

test('expired: expired', () => {
  assert.is(reason([makeLeaf(root, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) })]), 'expired');
});

test('valid only from tomorrow: not-yet-valid', () => {
  assert.is(reason([makeLeaf(root, { notBefore: new Date(Date.now() + 86400_000), notAfter: new Date(Date.now() + 2 * 86400_000) })]), 'not-yet-valid');
});

test('a CA certificate: is-ca', () => {
  assert.is(reason([makeLeaf(root, { isCA: true })]), 'is-ca');
});

test('key usage that can sign certificates, or lacks digitalSignature: bad-key-usage', () => {
  assert.is(reason([makeLeaf(root, { keyUsage: 1 | 32 })]), 'bad-key-usage');
  assert.is(reason([makeLeaf(root, { keyUsage: 4 })]), 'bad-key-usage');
});

test('no URI SAN: no-uri-san', () => {
  assert.is(reason([makeLeaf(root, { uris: [], dns: ['web.shop'] })]), 'no-uri-san');
});

test('two URI SANs: several-uri-sans', () => {
  assert.is(reason([makeLeaf(root, { uris: ['spiffe://cluster.local/ns/shop/sa/web', 'spiffe://cluster.local/ns/shop/sa/db'] })]), 'several-uri-sans');
});

test('a URI that is not spiffe: not-spiffe', () => {
  assert.is(reason([makeLeaf(root, { uris: ['https://cluster.local/ns/shop/sa/web'] })]), 'not-spiffe');
  assert.is(reason([makeLeaf(root, { uris: ['spiffe://cluster.local/workload/web'] })]), 'not-spiffe');
});

test('a trust domain the bundle does not know: unknown-trust-domain', () => {
  assert.is(reason([makeLeaf(root, { uris: ['spiffe://other.example/ns/shop/sa/web'] })]), 'unknown-trust-domain');
});

test('garbage instead of a certificate: malformed', () => {
  assert.is(reason([Buffer.from('not a certificate at all')]), 'malformed');
  assert.is(reason([]), 'malformed');
});

test('a previous root kept in the bundle during a rotation still validates its certificates', () => {
  const next = makeCa('next root');
  const both = new TrustBundle({ 'cluster.local': [toPem(next.der, 'CERTIFICATE'), toPem(root.der, 'CERTIFICATE')] });
  assert.ok(validateSvid([makeLeaf(root)], both));
  assert.ok(validateSvid([makeLeaf(next)], both));
});

test.run();
