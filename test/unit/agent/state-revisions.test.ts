// The agent state's revisions of policies and trust bundles, which readers (the authorizer, the
// HBONE trust bundle) use instead of comparing everything per push: they move when a push really
// changes a policy or bundle, and only then.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AgentState } from '../../../agent/state/state.js';
import type { ConfigPush, WireEntry } from '../../../shared/protocol/config.js';

const policy = (name: string, principals: string[]): WireEntry => ({ key: `policy/AuthorizationPolicy/shop/${name}`, value: { kind: 'AuthorizationPolicy', name, namespace: 'shop', spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals } }] }] } } });
const bundle = (roots: string[]): WireEntry => ({ key: 'trustbundle/cluster.local', value: { trustDomain: 'cluster.local', roots } });
const pod = (name: string): WireEntry => ({ key: `workload/shop/${name}`, value: { ip: '10.0.0.1', node: 'n1', serviceAccount: 'web', owner: '' } });

test('policy revision: moves on an added, changed or removed policy; not on a resent full push or a delta without policies', () => {
  const s = new AgentState('n1');
  const push = (p: Omit<ConfigPush, 'type'>) => s.apply({ type: 'config', ...p });
  push({ full: true, from: 0, to: 1, upserts: [policy('a', ['x']), bundle(['r1']), pod('w1')], deletes: [] });
  const afterFirst = s.policyRevision;
  assert.is(afterFirst, 1);
  push({ full: true, from: 0, to: 2, upserts: [pod('w1'), policy('a', ['x']), bundle(['r1'])], deletes: [] });
  assert.is(s.policyRevision, afterFirst, 'the same policies in a new full push');
  push({ full: false, from: 2, to: 3, upserts: [pod('w2')], deletes: ['workload/shop/w1'] });
  assert.is(s.policyRevision, afterFirst, 'a delta of workloads only');
  push({ full: false, from: 3, to: 4, upserts: [policy('a', ['x'])], deletes: [] });
  assert.is(s.policyRevision, afterFirst, 'a policy resent unchanged');
  push({ full: false, from: 4, to: 5, upserts: [policy('a', ['y'])], deletes: [] });
  assert.is(s.policyRevision, afterFirst + 1, 'a changed rule');
  push({ full: false, from: 5, to: 6, upserts: [policy('b', ['y'])], deletes: [] });
  assert.is(s.policyRevision, afterFirst + 2, 'an added policy');
  push({ full: false, from: 6, to: 7, upserts: [], deletes: ['policy/AuthorizationPolicy/shop/a'] });
  assert.is(s.policyRevision, afterFirst + 3, 'a removed policy');
  push({ full: true, from: 0, to: 8, upserts: [bundle(['r1'])], deletes: [] });
  assert.is(s.policyRevision, afterFirst + 4, 'a full push without the remaining policy');
  assert.is(s.trustBundleRevision, 1, 'the bundle never changed after the first push');
  push({ full: false, from: 8, to: 9, upserts: [bundle(['r1', 'r2'])], deletes: [] });
  assert.is(s.trustBundleRevision, 2, 'a root added');
});

test('a rejected push moves no revision', () => {
  const s = new AgentState('n1');
  s.apply({ type: 'config', full: true, from: 0, to: 1, upserts: [policy('a', ['x'])], deletes: [] });
  assert.throws(() => s.apply({ type: 'config', full: false, from: 1, to: 2, upserts: [policy('a', ['y']), { key: 'bogus/1', value: {} }], deletes: [] }));
  assert.is(s.policyRevision, 1);
  assert.is(s.version, 1);
});

test.run();
