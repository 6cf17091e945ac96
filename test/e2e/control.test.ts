// The controller and its agents on the local cluster: policies reach every agent (and show on the
// right nodes only), bad ones reach none, agents ride out a controller outage, and the agents'
// query API answers real WebSocket and HTTP clients and refuses remote ones without the token.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus } from '../../controller/push/server.js';
import { ambit, ambitOk, clusterProcesses, eventually, leftovers, root, sh, stateDir } from './helpers.js';

let tmp = '';
const agentsNow = async () => JSON.parse(await ambitOk(['agents', '-o', 'json'])) as { revision: number; agents: AgentStatus[] };
const query = async (node: string, what: string) => JSON.parse(await ambitOk(['query', node, what, '-o', 'json'])) as Record<string, unknown>[];
const policyNames = async (node: string) => (await query(node, 'policies')).map((p) => `${String(p.namespace)}/${String(p.name)}`).sort();
const inNode = (node: string, cmd: string) => sh(`nsenter --net=/run/netns/ambit-node-${node} ${cmd}`);

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--cluster', join(root, 'test', 'e2e', 'fixtures', 'admin-exposed.yaml')]);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('every node agent connects and runs the controller revision', async () => {
  const s = await eventually('agents in sync', async () => {
    const a = await agentsNow();
    return a.agents.length === 2 && a.agents.every((x) => x.connected && x.ackedVersion === a.revision && x.auth === 'certificate') && a;
  });
  // They bootstrapped with their node tokens and now authenticate with node certificates.
  assert.equal(s.agents.map((a) => a.node), ['node-1', 'node-2']);
});

test('a policy reaches every agent (apply --wait), and shows only on the nodes of the pods it applies to', async () => {
  const pods = JSON.parse(await ambitOk(['status', '-o', 'json'])) as { pods: { labels: Record<string, string>; node: string }[] };
  const echoNode = pods.pods.find((p) => p.labels.app === 'echo')!.node;
  const otherNode = echoNode === 'node-1' ? 'node-2' : 'node-1';
  const file = join(tmp, 'policies.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata: { name: istio-system }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: echo-from-client, namespace: shop }
spec:
  selector: { matchLabels: { app: echo } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/client/sa/curl] } }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: mesh-strict, namespace: istio-system }
spec:
  mtls: { mode: STRICT }
`,
  );
  const out = await ambitOk(['apply', '-f', file, '--wait']);
  assert.match(out, /acknowledged by all 2 connected agents in \d+ ms/);
  const a = await agentsNow();
  assert.ok(a.agents.every((x) => x.ackedVersion === a.revision), JSON.stringify(a));
  assert.equal(await policyNames(echoNode), ['istio-system/mesh-strict', 'shop/echo-from-client']);
  assert.equal(await policyNames(otherNode), ['istio-system/mesh-strict']);
});

test('an invalid policy is refused with its field named, and no agent version changes', async () => {
  const before = await agentsNow();
  const file = join(tmp, 'bad-policy.yaml');
  writeFileSync(file, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: bad, namespace: shop }\nspec:\n  action: PERMIT\n');
  const r = await ambit(['apply', '-f', file, '--wait']);
  assert.is(r.code, 1);
  assert.match(r.stderr, `${file}:5: AuthorizationPolicy shop/bad: spec.action must be one of "ALLOW", "DENY", "AUDIT", "CUSTOM"`);
  const after = await agentsNow();
  assert.is(after.revision, before.revision);
  assert.equal(after.agents.map((x) => x.ackedVersion), before.agents.map((x) => x.ackedVersion));
});

test('with the controller killed, agents keep serving their last configuration, and resync when it returns', async () => {
  const before = await query('node-1', 'config_dump');
  const dump = before as unknown as { version: number; policies: unknown[]; workloads: unknown[] };
  process.kill(clusterProcesses().controllerPids[0]!, 'SIGKILL');
  const away = await eventually('agent notices', async () => {
    const v = (await query('node-1', 'version')) as unknown as { version: number; controller: { connected: boolean } };
    return !v.controller.connected && v;
  });
  assert.is(away.version, dump.version);
  const during = (await query('node-1', 'config_dump')) as unknown as typeof dump;
  assert.equal(during.policies, dump.policies);
  assert.is(during.workloads.length, dump.workloads.length);

  await ambitOk(['up']); // restarts the controller; the agents reconnect with backoff
  await eventually('agents back in sync', async () => {
    const a = await agentsNow();
    return a.agents.every((x) => x.connected && x.ackedVersion === a.revision);
  }, 20_000);
  // And the next change flows as before.
  const ns = join(tmp, 'ns.yaml');
  writeFileSync(ns, 'apiVersion: v1\nkind: Namespace\nmetadata: { name: after-outage }\n');
  assert.match(await ambitOk(['apply', '-f', ns, '--wait']), 'acknowledged by all 2 connected agents');
});

test('the query API streams events to a subscriber', async () => {
  const follow = spawn(join(root, 'bin', 'ambit'), ['query', 'node-2', 'events', '--follow', '-o', 'json'], { env: { ...process.env, AMBIT_STATE_DIR: stateDir } });
  let out = '';
  follow.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await eventually('subscribed', async () => out.length > 0);
  const before = out.length;
  await ambitOk(['enroll', 'shop']);
  await eventually('an enrollment event', async () => out.slice(before).includes('"topic": "enrollment"'));
  follow.kill();
  assert.match(out.slice(before), '"topic": "config"');
});

test('a plain HTTP GET /config_dump gives the same state; a remote client needs the admin token', async () => {
  const a = await agentsNow();
  const local = JSON.parse(await inNode('node-1', 'curl -s http://127.0.0.1:15000/config_dump')) as { version: number; node: string };
  assert.is(local.node, 'node-1');
  assert.is(local.version, a.revision);
  // From node-2 to node-1's address: no token, refused; with it, answered.
  const code = await inNode('node-2', "curl -s -o /dev/null -w '%{http_code}' http://10.250.0.1:15000/config_dump");
  assert.is(code, '401');
  const cli = join(root, 'dist', 'cli', 'ambit.js');
  const refused = await inNode('node-2', `node ${cli} query node-1 version --address 10.250.0.1:15000 2>&1`);
  assert.match(refused, 'the agent refused the query (HTTP 401)');
  const tokenFile = join(stateDir, 'agents', 'admin-token');
  const answered = JSON.parse(await inNode('node-2', `node ${cli} query node-1 version --address 10.250.0.1:15000 --token-file ${tokenFile} -o json`)) as { node: string };
  assert.is(answered.node, 'node-1');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
