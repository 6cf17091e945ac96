import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PeerAuthenticator } from '../../../shared/policy/index.js';
import type { PolicyEntry } from '../../../shared/protocol/config.js';
import { peerAuth, workload } from './helpers.js';

const web = workload('web');
const db = workload('db');

function authenticator(...policies: PolicyEntry[]): PeerAuthenticator {
  const p = new PeerAuthenticator('istio-system');
  p.update(policies);
  return p;
}

const mode = (mtls: string) => ({ mtls: { mode: mtls } });
const meshStrict = peerAuth('default', mode('STRICT'), 'istio-system');

test('without any PeerAuthentication a workload accepts mTLS and plaintext (PERMISSIVE)', () => {
  assert.equal({ ...authenticator().mode(web, 8080) }, { mode: 'PERMISSIVE' });
});

test('a mesh-wide policy in the root namespace applies to every namespace', () => {
  const p = authenticator(meshStrict);
  assert.equal({ ...p.mode(workload('web', {}, 'billing'), 8080) }, { mode: 'STRICT', policy: 'istio-system/default' });
});

test('a namespace-wide policy overrides the mesh-wide one in its namespace only', () => {
  const p = authenticator(meshStrict, peerAuth('default', mode('PERMISSIVE')));
  assert.equal({ ...p.mode(web, 8080) }, { mode: 'PERMISSIVE', policy: 'shop/default' });
  assert.is(p.mode(workload('web', {}, 'billing'), 8080).mode, 'STRICT');
});

test('a workload policy overrides the namespace-wide one for the workloads it selects', () => {
  const p = authenticator(peerAuth('default', mode('PERMISSIVE')), peerAuth('web-strict', { selector: { matchLabels: { app: 'web' } }, ...mode('STRICT') }));
  assert.equal({ ...p.mode(web, 8080) }, { mode: 'STRICT', policy: 'shop/web-strict' });
  assert.equal({ ...p.mode(db, 8080) }, { mode: 'PERMISSIVE', policy: 'shop/default' });
});

test('UNSET inherits from the level above, at every level', () => {
  const p = authenticator(meshStrict, peerAuth('default', mode('UNSET')), peerAuth('web', { selector: { matchLabels: { app: 'web' } } }));
  assert.equal({ ...p.mode(web, 8080) }, { mode: 'STRICT', policy: 'istio-system/default' });
  assert.equal({ ...authenticator(peerAuth('default', {})).mode(web, 8080) }, { mode: 'PERMISSIVE' });
});

test('portLevelMtls overrides the workload mode for that target port only', () => {
  const p = authenticator(peerAuth('web', { selector: { matchLabels: { app: 'web' } }, ...mode('STRICT'), portLevelMtls: { 9090: { mode: 'PERMISSIVE' } } }));
  assert.equal({ ...p.mode(web, 9090) }, { mode: 'PERMISSIVE', policy: 'shop/web' });
  assert.is(p.mode(web, 8080).mode, 'STRICT');
});

test('an UNSET port inherits the workload mode, itself inherited from the namespace', () => {
  const p = authenticator(
    peerAuth('default', mode('STRICT')),
    peerAuth('web', { selector: { matchLabels: { app: 'web' } }, ...mode('UNSET'), portLevelMtls: { 9090: { mode: 'UNSET' }, 9091: { mode: 'PERMISSIVE' } } }),
  );
  assert.equal({ ...p.mode(web, 9090) }, { mode: 'STRICT', policy: 'shop/default' });
  assert.is(p.mode(web, 9091).mode, 'PERMISSIVE');
});

test('portLevelMtls without a selector is ignored and reported', () => {
  const p = authenticator(peerAuth('default', { ...mode('STRICT'), portLevelMtls: { 9090: { mode: 'PERMISSIVE' } } }));
  assert.is(p.mode(web, 9090).mode, 'STRICT');
  assert.match(p.warnings('shop/default')[0]!.message, /portLevelMtls applies only to a policy with a selector/);
});

test('a policy with a selector in the root namespace is ignored and reported', () => {
  const p = authenticator(peerAuth('web', { selector: { matchLabels: { app: 'web' } }, ...mode('STRICT') }, 'istio-system'));
  assert.is(p.mode(web, 8080).mode, 'PERMISSIVE');
  assert.match(p.warnings()[0]!.message, /selector in the root namespace/);
});

test('of two namespace-wide policies the first by name applies, and the other is reported', () => {
  const p = authenticator(peerAuth('b-permissive', mode('PERMISSIVE')), peerAuth('a-strict', mode('STRICT')));
  assert.equal({ ...p.mode(web, 8080) }, { mode: 'STRICT', policy: 'shop/a-strict' });
  assert.equal(p.warnings().map((w) => w.policy), ['shop/b-permissive']);
});

test('workload policies that can select the same workload are reported; the first by name applies', () => {
  const p = authenticator(
    peerAuth('web-v1', { selector: { matchLabels: { app: 'web', version: 'v1' } }, ...mode('PERMISSIVE') }),
    peerAuth('web', { selector: { matchLabels: { app: 'web' } }, ...mode('STRICT') }),
    peerAuth('db', { selector: { matchLabels: { app: 'db' } }, ...mode('STRICT') }),
  );
  assert.is(p.mode(workload('web', { app: 'web', version: 'v1' }), 8080).policy, 'shop/web');
  assert.equal(p.warnings().map((w) => w.policy), ['shop/web-v1']);
  assert.match(p.warnings()[0]!.message, /can select the same workloads as shop\/web \(app=web\)/);
});

test('DISABLE is reported: HBONE cannot be plaintext, so it only stops STRICT', () => {
  const p = authenticator(meshStrict, peerAuth('default', mode('DISABLE')));
  assert.equal({ ...p.mode(web, 8080) }, { mode: 'DISABLE', policy: 'shop/default' });
  assert.match(p.warnings('shop/default')[0]!.message, /DISABLE cannot turn off mTLS for HBONE/);
});

test('update replaces every policy and skips other kinds', () => {
  const p = authenticator(meshStrict);
  p.update([{ kind: 'AuthorizationPolicy', name: 'x', namespace: 'shop', spec: {} }]);
  assert.is(p.mode(web, 8080).mode, 'PERMISSIVE');
});

test.run();
