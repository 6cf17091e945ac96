// What agents say they capture becomes Pod annotations through the Kubernetes API (the local API
// server over HTTPS), as Istio's CNI node agent marks redirected pods: captured pods of the node get
// `ambient.istio.io/redirection: enabled`, a failed one the reason, a released one loses the mark,
// and pods of other nodes are left alone.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { CaptureAnnotator } from '../../../controller/capture/annotator.js';
import { commitPods, ns, pod, startApi, type TestApi } from '../apiserver/helpers.js';

let t: TestApi;
let kube: KubeClient;

test.before(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2'), pod('web-2', 'web', 'node-1', '10.244.1.3'), pod('db-1', 'db', 'node-2', '10.244.2.2')]);
  kube = new KubeClient(loadKubeconfig(t.kubeconfig));
});
test.after(async () => {
  kube.close();
  await t.close();
});

/** The capture marks of a pod (its other annotations, such as its owner, are not this test's). */
const annotations = (name: string) => Object.fromEntries(Object.entries(t.store.get('Pod', 'shop', name)?.metadata.annotations ?? {}).filter(([k]) => k === 'ambient.istio.io/redirection' || k === 'ambit.dev/capture-failure'));

test("an agent's report marks its node's pods: captured, failed with the reason; other nodes' pods untouched", async () => {
  const a = new CaptureAnnotator(kube, { get: (k, n, m) => t.store.get(k, n, m), list: (k, n) => t.store.list(k, n) }, pino({ level: 'silent' }));
  a.report('node-1', { captured: new Set(['shop/web-1']), failed: { 'shop/web-2': 'setns: operation not permitted' } });
  await a.idle();
  assert.equal(annotations('web-1'), { 'ambient.istio.io/redirection': 'enabled' });
  assert.equal(annotations('web-2'), { 'ambit.dev/capture-failure': 'setns: operation not permitted' });
  assert.equal(annotations('db-1'), {});

  const before = t.store.get('Pod', 'shop', 'web-1')!.metadata.resourceVersion;
  a.report('node-1', { captured: new Set(['shop/web-1', 'shop/web-2']), failed: {} });
  await a.idle();
  assert.equal(annotations('web-2'), { 'ambient.istio.io/redirection': 'enabled' }, 'a retried capture replaces the failure');
  assert.is(t.store.get('Pod', 'shop', 'web-1')!.metadata.resourceVersion, before, 'a pod already marked is not written again');

  a.report('node-1', { captured: new Set(['shop/web-2']), failed: {} });
  await a.idle();
  assert.equal(annotations('web-1'), {}, 'a released pod loses the mark');
});

test.run();
