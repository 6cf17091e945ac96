// Istio's canonical service and revision of a workload, from its labels in Istio's order, with
// Istio's defaults, and the fields a push carries for them (only what differs from the defaults).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalFields, canonicalNames, canonicalOf, workloadName } from '../../../shared/resources/canonical.js';

test('the canonical service is the canonical-name label, then app.kubernetes.io/name, then app, then the workload name', () => {
  const all = { 'service.istio.io/canonical-name': 'store', 'app.kubernetes.io/name': 'k8s-name', app: 'app' };
  assert.is(canonicalNames(all, 'web-v1').service, 'store');
  assert.is(canonicalNames({ 'app.kubernetes.io/name': 'k8s-name', app: 'app' }, 'web-v1').service, 'k8s-name');
  assert.is(canonicalNames({ app: 'app' }, 'web-v1').service, 'app');
  assert.is(canonicalNames({}, 'web-v1').service, 'web-v1');
  assert.is(canonicalNames(undefined, 'web-v1').service, 'web-v1');
});

test('the canonical revision is the canonical-revision label, then app.kubernetes.io/version, then version, then latest', () => {
  assert.is(canonicalNames({ 'service.istio.io/canonical-revision': 'r3', 'app.kubernetes.io/version': 'v2', version: 'v1' }, 'w').revision, 'r3');
  assert.is(canonicalNames({ 'app.kubernetes.io/version': 'v2', version: 'v1' }, 'w').revision, 'v2');
  assert.is(canonicalNames({ version: 'v1' }, 'w').revision, 'v1');
  assert.is(canonicalNames({ app: 'x' }, 'w').revision, 'latest');
});

test('a label that is present but empty still wins, as in Istio', () => {
  assert.equal(canonicalNames({ app: '', version: '' }, 'w'), { service: '', revision: '' });
});

test('the workload name is the owner\'s name, else the pod\'s', () => {
  assert.is(workloadName('Deployment/web-v1', 'web-v1-abc'), 'web-v1');
  assert.is(workloadName('', 'web-v1-abc'), 'web-v1-abc');
  assert.is(workloadName(undefined, 'web-v1-abc'), 'web-v1-abc');
});

test('a push carries only the names that differ from the defaults, and an agent reads them back the same', () => {
  const labels = { app: 'web', version: 'v1' };
  const fields = canonicalFields(labels, 'Deployment/web-v1', 'web-v1-abc');
  assert.equal(fields, { canonicalService: 'web', canonicalRevision: 'v1' });
  assert.equal(canonicalOf({ name: 'web-v1-abc', owner: 'Deployment/web-v1', ...fields }), canonicalNames(labels, 'web-v1'));
  assert.equal(canonicalFields({ app: 'web-v1' }, 'Deployment/web-v1', 'web-v1-abc'), {}, 'app equal to the workload name, and no version');
  assert.equal(canonicalOf({ name: 'web-v1-abc', owner: 'Deployment/web-v1' }), { service: 'web-v1', revision: 'latest' });
});

test.run();
