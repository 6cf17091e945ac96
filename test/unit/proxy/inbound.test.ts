// The inbound side's refusals of authenticated HBONE peers, through a real server and pool on
// loopback: a CONNECT to an address that is no captured pod of this node (503), a Forwarded source
// that is not an IPv4 address (400), one that names a workload of another identity (403), and a
// DENY policy naming the peer's namespace (403), each counted by reason, the decision logged.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { Resolver } from '../../../agent/proxy/resolve.js';
import { ConnectionTable } from '../../../agent/proxy/connections.js';
import { handleTunnel, type InboundContext } from '../../../agent/proxy/inbound.js';
import { HboneConnectRefused } from '../../../shared/hbone/protocol.js';
import { Authorizer, PeerAuthenticator } from '../../../shared/policy/index.js';
import { fixture, rejection } from './helpers.js';
import { stateWith } from '../../helpers/state.js';

// The pool presents shop/web's SVID; 10.0.0.7 is a workload of shop/web, 10.0.0.8 of shop/other.
const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'workload/shop/web-1', value: { ip: '10.0.0.7', node: 'n2', serviceAccount: 'web', owner: 'Deployment/web' } },
  { key: 'workload/shop/other-1', value: { ip: '10.0.0.8', node: 'n2', serviceAccount: 'other', owner: 'Deployment/other' } },
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.1', node: 'n1', serviceAccount: 'db', owner: 'Deployment/db', labels: { app: 'db' } } },
]);
const denied: string[] = [];
const failed: string[] = [];
const authorizer = new Authorizer();
const ctx: InboundContext = {
  resolver: new Resolver(state),
  authorizer,
  peerAuthentication: new PeerAuthenticator(),
  connections: new ConnectionTable({ opened: () => undefined, closed: () => undefined }),
  // 127.0.0.1 stands for this node's one captured pod; the test never gets as far as dialling it.
  localPod: (ip) => (ip === '127.0.0.1' ? { workload: state.workloads.get('workload/shop/db-1')!, nsFd: -1 } : undefined),
  trustDomain: 'cluster.local',
  log: pino({ level: 'silent' }),
  access: pino({ level: 'silent' }),
  denied: (r) => denied.push(r),
  failed: (r) => failed.push(r),
};

async function status(f: Awaited<ReturnType<typeof fixture>>, authority: string, forwarded?: string): Promise<number> {
  const err = await rejection(f.pool.connect(f.request({ authority, ...(forwarded ? { headers: { forwarded } } : {}) })));
  assert.instance(err, HboneConnectRefused);
  return (err as HboneConnectRefused).status;
}

test('a CONNECT to an address that is no captured pod of this node is answered 503', async () => {
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    assert.is(await status(f, '10.9.9.9:80'), 503);
    assert.equal(failed, ['unknown-destination']);
  } finally {
    await f.close();
  }
});

test('a Forwarded source that is no address is answered 400; one of another identity 403', async () => {
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    assert.is(await status(f, '127.0.0.1:5432', 'for=somewhere'), 400);
    assert.is(await status(f, '127.0.0.1:5432', 'for=10.0.0.8'), 403, 'shop/web may not claim shop/other\'s address');
    assert.ok(failed.includes('bad-forwarded'));
    assert.ok(denied.includes('source-address-not-of-peer'));
  } finally {
    await f.close();
  }
});

test("a DENY policy on the peer's namespace is answered 403, counted as a policy denial", async () => {
  authorizer.update([{ kind: 'AuthorizationPolicy', name: 'no-shop', namespace: 'shop', spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] } }]);
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    assert.is(await status(f, '127.0.0.1:5432', 'for=10.0.0.7'), 403);
    assert.is(denied[denied.length - 1], 'policy');
  } finally {
    await f.close();
    authorizer.update([]);
  }
});

test.run();
