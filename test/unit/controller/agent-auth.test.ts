// Agents prove their node to the controller with a ServiceAccount token bound to the node, checked by
// the Kubernetes API's TokenReview (the local API server, over HTTPS): the agents' own token for
// their node gets configuration; a token bound to another node, of another ServiceAccount, for
// another audience, bound to nothing, or unreadable by the API is refused with the reason logged.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { tokenReviewCheck } from '../../../controller/push/token-review.js';
import { PushServer } from '../../../controller/push/server.js';
import { ShareBuilder } from '../../../controller/push/share.js';
import { ControllerConnection } from '../../../agent/control/client.js';
import { AgentState } from '../../../agent/state/state.js';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { agentServiceAccount, agentTokenAudience } from '../../../shared/protocol/config.js';
import { ns, startApi, type TestApi } from '../apiserver/helpers.js';
import { join } from 'node:path';
import { until } from '../until.js';

const log = pino({ level: 'silent' });
let t: TestApi;
let client: KubeClient;

test.before(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('ambit-system') });
  for (const [namespace, name] of [['ambit-system', 'ambit-agent'], ['ambit-system', 'intruder']]) {
    const r = await t.call('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } } });
    assert.is(r.status, 201, r.text);
  }
  client = new KubeClient(loadKubeconfig(t.kubeconfig));
});
test.after(async () => {
  client.close();
  await t.close();
});

async function token(sa: string, o: { node?: string; audience?: string } = {}): Promise<string> {
  const args = ['create', 'token', sa, '-n', 'ambit-system', '--audience', o.audience ?? agentTokenAudience];
  if (o.node) args.push('--bound-object-kind', 'Node', '--bound-object-name', o.node);
  const r = await t.kubectl(...args);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test("the agents' token bound to a node proves that node and no other; other tokens are refused with the reason", async () => {
  const check = tokenReviewCheck(client, { serviceAccount: agentServiceAccount });
  const good = await token('ambit-agent', { node: 'node-1' });
  assert.is(await check('node-1', good), undefined);
  assert.is(await check('node-2', good), 'the token is bound to node node-1, not node-2');
  assert.match((await check('node-1', await token('intruder', { node: 'node-1' })))!, "system:serviceaccount:ambit-system:intruder's, not the agents' ServiceAccount");
  assert.match((await check('node-1', await token('ambit-agent', { node: 'node-1', audience: 'someone-else' })))!, 'did not authenticate the token: [invalid bearer token, token audiences ["someone-else"] is invalid');
  assert.match((await check('node-1', await token('ambit-agent')))!, 'bound to no node');
  assert.match((await check('node-1', 'not-a-token'))!, 'did not authenticate the token');
});

test('a good answer is kept a while: the API server away, a known token still proves its node', async () => {
  const check = tokenReviewCheck(client, { serviceAccount: agentServiceAccount, cacheMs: 60_000 });
  const good = await token('ambit-agent', { node: 'node-2' });
  const fresh = await token('ambit-agent', { node: 'node-2' });
  assert.is(await check('node-2', good), undefined);
  const broken = new KubeClient({ ...loadKubeconfig(t.kubeconfig), server: 'https://127.0.0.1:1' });
  const unreachable = tokenReviewCheck(broken, { serviceAccount: agentServiceAccount });
  assert.match((await unreachable('node-2', fresh))!, 'the token could not be reviewed');
  broken.close();
  assert.is(await check('node-2', good), undefined);
});

test('through the push channel: an agent with its node token gets configuration; one claiming another node is refused', async () => {
  const ca = CertificateAuthority.open(join(t.dir, 'mesh-ca'), 'cluster.local');
  const serving = ca.issueServing(['127.0.0.1'], []);
  const review = tokenReviewCheck(client, { serviceAccount: agentServiceAccount });
  const refusals: string[] = [];
  const checkToken = async (node: string, tok: string) => {
    const refused = await review(node, tok);
    if (refused) refusals.push(`${node}: ${refused}`);
    return refused;
  };
  const push = new PushServer({ share: new ShareBuilder('istio-system'), nodes: ['node-1', 'node-2'], checkToken, tls: { key: serving.keyPem, cert: serving.certPem }, log });
  push.server.listen(0, '127.0.0.1');
  await once(push.server, 'listening');
  const url = `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}`;
  const nodeToken = await token('ambit-agent', { node: 'node-1' });
  const connect = (node: string) => {
    const c = new ControllerConnection({ url: () => url, node, token: () => nodeToken, ca: () => [ca.rootPem], state: new AgentState(node), log, minBackoffMs: 50, maxBackoffMs: 200 });
    c.start();
    return c;
  };
  const honest = connect('node-1');
  const liar = connect('node-2');
  try {
    await until('node-1 connected', () => push.agents().find((a) => a.node === 'node-1')?.connected);
    const agents = Object.fromEntries(push.agents().map((a) => [a.node, a]));
    assert.is(agents['node-1']?.connected, true);
    assert.is(agents['node-1']?.auth, 'token');
    await until('node-2 refused', () => refusals.length >= 2);
    assert.equal([...new Set(refusals)], ['node-2: the token is bound to node node-1, not node-2']);
    assert.is(push.agents().find((a) => a.node === 'node-2')?.connected, false, 'a token bound to node-1 must not connect node-2');
  } finally {
    honest.stop();
    liar.stop();
    push.close();
  }
});

test.run();
