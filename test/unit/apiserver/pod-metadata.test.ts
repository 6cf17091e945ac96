// A Pod is the cluster's to make, but its labels and annotations are anyone's to change, as in
// Kubernetes: `kubectl label` and `kubectl annotate` of a pod work (the mesh controller marks
// captured pods this way), and a change to anything else is refused naming what may change.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commitPods, ns, pod, startApi, type TestApi } from './helpers.js';
import type { Pod } from '../../../shared/resources/types.js';

let t: TestApi;

test.before(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2')]);
});
test.after(async () => {
  await t.close();
});

test('kubectl label and annotate change a pod; a spec change is refused and nothing is stored', async () => {
  const label = await t.kubectl('label', 'pod', 'web-1', '-n', 'shop', 'tier=front');
  assert.is(label.code, 0, label.stderr);
  const annotate = await t.kubectl('annotate', 'pod', 'web-1', '-n', 'shop', 'ambient.istio.io/redirection=enabled');
  assert.is(annotate.code, 0, annotate.stderr);
  const p = t.store.get('Pod', 'shop', 'web-1')!;
  assert.is(p.metadata.labels?.tier, 'front');
  assert.is(p.metadata.annotations?.['ambient.istio.io/redirection'], 'enabled');

  const before = p.metadata.resourceVersion;
  const r = await t.call('PATCH', '/api/v1/namespaces/shop/pods/web-1', { body: { spec: { nodeName: 'node-2' } }, contentType: 'application/merge-patch+json' });
  assert.is(r.status, 422);
  assert.match((r.json as { message: string }).message, 'pod updates may not change fields other than metadata.labels and metadata.annotations');
  assert.is(t.store.get('Pod', 'shop', 'web-1')!.metadata.resourceVersion, before);
  assert.is((t.store.get('Pod', 'shop', 'web-1') as Pod).spec.nodeName, 'node-1');
});

test.run();
