// The query API's `connections` and `denials` topics on the local cluster: a WebSocket client on the
// destination node's 127.0.0.1:15000 (a socket made inside the node's network namespace) subscribes
// to both, then one enrolled pod is let in by an ALLOW policy and another is kept out by a DENY
// policy; the client sees the first connection opened and closed and the second denied, with the
// identities on both sides and the policy rule that decided.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { closeFd, openNetns, tcpSocketIn } from '../../native/netns.js';
import { ambit, ambitOk, applyAndWait, eventually, inSync, leftovers, podOf, type PodStatus, status } from './helpers.js';

let tmp = '';

/** An HTTP request from inside a pod; the body on success, `ERR <curl exit code>` otherwise. */
async function curl(pod: PodStatus, url: string): Promise<string> {
  const r = await ambit(['exec', '-n', pod.namespace, pod.name, '--', 'curl', '-sS', '--max-time', '5', url]);
  return r.code === 0 ? r.stdout : `ERR ${r.code} ${r.stderr.trim()}`;
}

const apply = (yaml: string) => applyAndWait(tmp, yaml);

interface ApiMessage {
  id?: number;
  result?: unknown;
  error?: { code: string; message: string };
  topic?: string;
  time?: string;
  data?: Record<string, unknown>;
}

/**
 * A WebSocket to a node agent's query API, which listens on the node's loopback: the socket is made
 * inside the node's network namespace (native/netns), so this process needs neither nsenter nor
 * the admin token.
 */
async function queryApi(node: string): Promise<{ ws: WebSocket; messages: ApiMessage[] }> {
  const layout = (await status()).nodes.find((n) => n.name === node)!;
  const nsFd = openNetns(`/run/netns/${layout.netns}`);
  let fd: number;
  try {
    fd = tcpSocketIn(nsFd);
  } finally {
    closeFd(nsFd);
  }
  const ws = new WebSocket('ws://127.0.0.1:15000/', { createConnection: () => new Socket({ fd }).connect(15000, '127.0.0.1'), handshakeTimeout: 5000 });
  const messages: ApiMessage[] = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as ApiMessage));
  await once(ws, 'open');
  return { ws, messages };
}

const deployment = (name: string, ns: string, sa: string, node: string, server: boolean) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      serviceAccountName: ${sa}
      nodeName: ${node}
      containers:
        - name: c
          command: ${server ? `[ambit, sample, http-server, --app, ${name}, --version, v1, --port, "8080"]` : '[sleep, infinity]'}
---
`;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-events-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--no-samples']);
  // ledger/books serves on node-2; tellers/alice and tellers/mallory call it from node-1. Both
  // namespaces are enrolled from the start (their pods wait until captured); the test unenrolls them.
  await apply(`apiVersion: v1
kind: Namespace
metadata: { name: ledger, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: tellers, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: books, namespace: ledger }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: alice, namespace: tellers }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: mallory, namespace: tellers }
---
${deployment('books', 'ledger', 'books', 'node-2', true)}${deployment('alice', 'tellers', 'alice', 'node-1', false)}${deployment('mallory', 'tellers', 'mallory', 'node-1', false)}apiVersion: v1
kind: Service
metadata: { name: books, namespace: ledger }
spec:
  selector: { app: books }
  ports: [{ port: 80, targetPort: 8080 }]
`);
  await eventually('every pod running and captured', async () => {
    const s = await status();
    return s.pods.length === 3 && s.pods.every((p) => p.phase === 'Running' && p.capture === 'captured');
  }, 30_000);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test("the destination agent's query API streams an allowed connection's open and close and a denied connection, with both identities and the deciding rule", async () => {
  const [books, alice, mallory] = [await podOf('books'), await podOf('alice'), await podOf('mallory')];
  const api = await queryApi('node-2');
  try {
    await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-tellers, namespace: ledger }
spec:
  selector: { matchLabels: { app: books } }
  action: ALLOW
  rules: [{ from: [{ source: { namespaces: [tellers] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-mallory, namespace: ledger }
spec:
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/tellers/sa/mallory] } }] }]
`);
    api.ws.send(JSON.stringify({ id: 1, method: 'subscribe', params: { topics: ['connections', 'denials'] } }));
    const answer = await eventually('the subscription answered', async () => api.messages.find((m) => m.id === 1));
    assert.equal(answer.result, { subscribed: ['connections', 'denials'] });

    assert.match(await curl(alice, 'http://books.ledger/allowed'), 'pod=books');
    assert.match(await curl(mallory, 'http://books.ledger/denied'), /^ERR/);

    const from = (m: ApiMessage, principal: string) => m.data?.source_principal === principal;
    const alicePrincipal = 'cluster.local/ns/tellers/sa/alice';
    const malloryPrincipal = 'cluster.local/ns/tellers/sa/mallory';
    const connections = () => api.messages.filter((m) => m.topic === 'connections' && from(m, alicePrincipal));
    const closed = await eventually('the allowed connection closed', async () => connections().find((m) => m.data!.event === 'closed'));
    const opened = connections().find((m) => m.data!.event === 'opened');
    assert.ok(opened, 'an opened event came before the closed one');
    assert.is(opened!.data!.id, closed.data!.id);
    const side = {
      reporter: 'destination',
      source: alice.ip,
      source_workload: `tellers/${alice.name}`,
      source_principal: alicePrincipal,
      destination: `${books.ip}:8080`,
      destination_workload: `ledger/${books.name}`,
      destination_principal: 'cluster.local/ns/ledger/sa/books',
      connection_security_policy: 'mutual_tls',
      decision: 'ALLOW policy ledger/allow-tellers rule 0',
    };
    for (const m of [opened!, closed]) {
      assert.ok(m.time, 'the envelope of every topic: {topic, time, data}');
      for (const [k, v] of Object.entries(side)) assert.is(m.data![k], v, `${String(m.data!.event)}: ${k}`);
    }
    assert.ok(Number(closed.data!.bytes_received) > 0, 'the request crossed (Istio: received is the request)');
    assert.ok(Number(closed.data!.bytes_sent) > 0, 'the answer crossed (sent is the response)');
    assert.type(closed.data!.duration_ms, 'number');

    const denial = await eventually('the denial', async () => api.messages.find((m) => m.topic === 'denials' && from(m, malloryPrincipal)));
    const denied = {
      event: 'denied',
      reporter: 'destination',
      source: mallory.ip,
      source_workload: `tellers/${mallory.name}`,
      source_principal: malloryPrincipal,
      destination: `${books.ip}:8080`,
      destination_workload: `ledger/${books.name}`,
      destination_principal: 'cluster.local/ns/ledger/sa/books',
      connection_security_policy: 'mutual_tls',
      code: 'policy',
      reason: 'DENY policy ledger/deny-mallory rule 0',
      policy: 'ledger/deny-mallory',
      rule: 0,
      action: 'DENY',
    };
    for (const [k, v] of Object.entries(denied)) assert.is(denial.data![k], v, `denied: ${k}`);
    assert.not.ok(api.messages.some((m) => m.topic === 'connections' && from(m, malloryPrincipal)), 'a denied connection is never opened');
  } finally {
    api.ws.close();
    await ambit(['delete', 'authorizationpolicy', 'deny-mallory', '-n', 'ledger']);
    await ambit(['delete', 'authorizationpolicy', 'allow-tellers', '-n', 'ledger']);
    await ambit(['unenroll', 'tellers']);
    await ambit(['unenroll', 'ledger']);
    await inSync();
  }
  await eventually('the pods released from capture', async () => (await status()).pods.every((p) => p.capture !== 'captured'), 30_000);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
