// Two controller replicas, as the controller's Deployment runs them: killing the leader moves the
// Lease to the other within 15 s, the agents move to it, and enrolled pods keep talking over mutual
// TLS the whole time; the survivor then serves what changes (a new pod is captured and certified),
// and `ambit up` brings the killed replica back as a follower.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControllerClient } from '../../controller/api/client.js';
import { replicaStateDir } from '../../cluster/mesh-controller.js';
import { ambit, ambitOk, clusterProcesses, eventually, leftovers, sh, stateDir, status } from './helpers.js';

let tmp = '';
const kubectl = (args: string) => sh(`kubectl --kubeconfig ${join(stateDir, 'kubeconfig')} ${args}`);
const holder = async () => (await kubectl("get lease ambit-controller -n ambit-system -o jsonpath='{.spec.holderIdentity}'")).trim();
const agents = async () => (JSON.parse(await ambitOk(['agents', '-o', 'json'])) as { agents: { node: string; connected: boolean; controller?: string }[] }).agents;
const replicas = ['ambit-controller-0', 'ambit-controller-1'];

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-failover-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  const file = join(tmp, 'cluster.yaml');
  writeFileSync(file, 'apiVersion: ambit.dev/v1alpha1\nkind: Cluster\nmetadata: { name: failover }\nspec: { nodes: 2, controllerReplicas: 2, prometheus: false }\n');
  await ambitOk(['up', '--cluster', file], 120_000);
  for (const ns of ['shop', 'client']) await ambitOk(['enroll', ns]);
  await eventually('the sample pods captured', async () => (await status()).pods.every((p) => p.capture === 'captured'), 30_000);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('two replicas run: one holds the Lease, and every agent is connected to a replica', async () => {
  assert.is(clusterProcesses().controllerPids.length, 2);
  assert.ok(replicas.includes(await holder()), `the Lease is held by a replica (${await holder()})`);
  await eventually('both agents connected', async () => (await agents()).filter((a) => a.connected).length === 2);
});

test('the leader killed: the Lease moves within 15 s, the agents follow, and enrolled pods keep talking meanwhile', async () => {
  const s = await status();
  const web = s.services.find((x) => x.name === 'web')!;
  const client = s.pods.find((p) => p.namespace === 'client')!;
  // A request every 200 ms from the client pod to the web Service (HBONE between the nodes' agents), for the whole failover.
  let stop = false;
  const results: string[] = [];
  const load = (async () => {
    for (let i = 0; i < 300 && !stop; i++) {
      const out = await sh(`nsenter --net=/run/netns/ambit-pod-client.${client.name} curl -sS --max-time 5 http://${web.clusterIP}/ 2>&1 || true`);
      results.push(out.trim());
      await new Promise((r) => setTimeout(r, 200));
    }
  })();

  const leader = await holder();
  const survivor = replicas.find((r) => r !== leader)!;
  await new Promise((r) => setTimeout(r, 1000));
  const killedAt = performance.now();
  process.kill(clusterProcesses().controllerPids[replicas.indexOf(leader)]!, 'SIGKILL');
  await eventually('the Lease taken by the survivor', async () => (await holder()) === survivor, 20_000);
  const movedMs = performance.now() - killedAt;
  assert.ok(movedMs <= 15_000, `the Lease moved in ${Math.round(movedMs)} ms`);
  await eventually(`both agents connected to ${survivor}`, async () => (await agents()).every((a) => a.connected && a.controller === survivor), 20_000);
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await load;
  const failed = results.filter((r) => !/^web v[12] /.test(r));
  assert.ok(results.length >= 20, `requests made during the failover: ${results.length}`);
  assert.equal(failed, [], `${failed.length} of ${results.length} requests failed`);
});

test('the survivor serves changes: a new pod is captured and reachable over the mesh, and a config change reaches every agent', async () => {
  await kubectl('scale deployment web-v1 -n shop --replicas=2');
  const fresh = await eventually('a second web-v1 pod captured', async () => {
    const pods = (await status()).pods.filter((p) => p.labels.version === 'v1' && p.labels.app === 'web' && p.phase === 'Running' && p.capture === 'captured');
    return pods.length === 2 && pods;
  }, 30_000);
  const client = (await status()).pods.find((p) => p.namespace === 'client')!;
  for (const p of fresh) assert.match(await sh(`nsenter --net=/run/netns/ambit-pod-client.${client.name} curl -sS --max-time 5 http://${p.ip}:8080/`), /^web v1 /);
  const ns = join(tmp, 'ns.yaml');
  writeFileSync(ns, 'apiVersion: v1\nkind: Namespace\nmetadata: { name: after-failover }\n');
  assert.match(await ambitOk(['apply', '-f', ns, '--wait']), 'acknowledged by all 2 connected agents');
});

test('`ambit up` starts the killed replica again, and it follows', async () => {
  const leader = await holder();
  assert.match(await ambitOk(['up']), 'restarting the controller');
  assert.is(await holder(), leader);
  const health = await Promise.all([0, 1].map((i) => new ControllerClient(replicaStateDir(stateDir, i)).request<{ identity: string; leader: boolean }>('GET', '/healthz')));
  assert.equal(health.map((h) => h.identity), replicas);
  assert.equal(health.filter((h) => h.leader).map((h) => h.identity), [leader]);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
