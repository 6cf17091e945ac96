// The local cluster end to end, through the real `ambit` command: nodes and pods as namespaces,
// traffic across nodes by pod IP and by Service, idempotent up, restarts, bad input, and a down
// (also after a crashed up) that leaves nothing behind.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from '../../shared/resources/types.js';
import { ambit, ambitOk, clusterProcesses, eventually, leftovers, root, sh, stateDir, status } from './helpers.js';

const inClient = (argv: string[]) => ambit(['exec', '-n', 'client', 'deploy/client', '--', ...argv]);

/** The addresses host-local holds on a node (its lease files), sorted. */
function leases(node: string): string[] {
  const dir = join(stateDir, 'nodes', node, 'cni', 'networks', 'ambit-local');
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort() : [];
}

/** The addresses of a node's pods as the API has them, sorted: what the leases must be. */
async function podIps(node: string): Promise<string[]> {
  return (await status()).pods.filter((p) => p.node === node && p.ip).map((p) => p.ip).sort();
}
let tmp = '';

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-'));
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('ambit up builds the default cluster with the samples running', async () => {
  const started = performance.now();
  const out = await ambitOk(['up']);
  process.stdout.write(`\n    ambit up (2 nodes, 4 sample pods): ${((performance.now() - started) / 1000).toFixed(2)} s\n`);
  assert.match(out, 'Cluster ready in');
  const s = await status();
  assert.equal(s.nodes.map((n) => n.name), ['node-1', 'node-2']);
  assert.is(s.pods.length, 4);
  for (const p of s.pods) {
    assert.is(p.phase, 'Running', `${p.name} is ${p.phase}`);
    const node = s.nodes.find((n) => n.name === p.node)!;
    assert.ok(p.ip.startsWith(node.podCIDR.replace('0/24', '')), `${p.name} ${p.ip} is in ${node.podCIDR}`);
  }
  const web = s.services.find((x) => x.name === 'web')!;
  assert.ok(web.clusterIP.startsWith('10.96.'));
  assert.is(web.ports[0]!.endpoints.length, 2);
  assert.equal(new Set(s.pods.filter((p) => p.labels.app === 'web').map((p) => p.node)).size, 2, 'web v1 and v2 are spread over both nodes');
});

test('ambit up again says it is up and changes nothing', async () => {
  const before = await status();
  const out = await ambitOk(['up']);
  assert.match(out, 'already up');
  assert.equal((await status()).pods.map((p) => p.name), before.pods.map((p) => p.name));
});

test('a pod on one node reaches a pod on the other by pod IP, and the server sees the client pod address', async () => {
  const s = await status();
  const client = s.pods.find((p) => p.namespace === 'client')!;
  const remote = s.pods.find((p) => p.labels.app === 'web' && p.node !== client.node)!;
  const r = await inClient(['curl', '-sS', '--max-time', '5', `http://${remote.ip}:8080/hello`]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `pod=${remote.name} ip=${remote.ip} node=${remote.node} client=${client.ip} path=/hello`);
});

test('requests to a Service ClusterIP reach both endpoints, on both nodes', async () => {
  const s = await status();
  const web = s.services.find((x) => x.name === 'web')!;
  const r = await inClient(['ambit', 'sample', 'load', `http://${web.clusterIP}/`, '--count', '40']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const load = JSON.parse(r.stdout) as { ok: number; byPod: Record<string, number>; byVersion: Record<string, number> };
  assert.is(load.ok, 40);
  const webPods = s.pods.filter((p) => p.labels.app === 'web').map((p) => p.name).sort();
  assert.equal(Object.keys(load.byPod).sort(), webPods, `spread: ${JSON.stringify(load.byPod)}`);
  assert.equal(Object.keys(load.byVersion).sort(), ['v1', 'v2']);
});

test('Service names resolve inside pods, and TCP flows through the echo Service', async () => {
  const script = "const s=require('net').connect(9000,'echo.shop.svc.cluster.local',()=>s.end('ping-42'));s.pipe(process.stdout)";
  const r = await inClient(['node', '-e', script]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'ping-42');
});

test('a socket opened in the root namespace cannot reach cluster addresses', async () => {
  const s = await status();
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    const sock = connect(8080, s.pods[0]!.ip);
    sock.on('connect', () => resolve(Object.assign(new Error('connected'), { code: 'CONNECTED' })));
    sock.on('error', resolve);
  });
  assert.is(err.code, 'EHOSTUNREACH');
});

test('bad input is refused with file, line and field, and nothing of that apply is stored', async () => {
  const file = join(tmp, 'bad.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata:
  name: e2e-partial
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  namespace: e2e-partial
spec:
  replicas: "three"
  selector: { matchLabels: { app: broken } }
  template:
    metadata: { labels: { app: broken } }
    spec:
      containers: [{ name: c, command: [sleep, infinity] }]
`,
  );
  const r = await ambit(['apply', '-f', file]);
  assert.is(r.code, 1);
  assert.match(r.stderr, `${file}:12: Deployment e2e-partial/broken: spec.replicas must be of type integer`);
  const ns = await ambit(['get', 'namespace', 'e2e-partial']);
  assert.is(ns.code, 1);
  assert.match(ns.stderr, 'not found');

  writeFileSync(file, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: lost\n  namespace: nowhere\nspec:\n  ports: [{ port: 80 }]\n');
  const missing = await ambit(['apply', '-f', file]);
  assert.match(missing.stderr, `${file}:5: Service nowhere/lost: metadata.namespace nowhere does not exist`);
});

test('a Deployment is spread over the nodes, and deleting it removes its pods and their namespaces', async () => {
  const file = join(tmp, 'spread.yaml');
  writeFileSync(
    file,
    `apiVersion: apps/v1
kind: Deployment
metadata: { name: spread, namespace: shop }
spec:
  replicas: 4
  selector: { matchLabels: { app: spread } }
  template:
    metadata: { labels: { app: spread } }
    spec:
      containers: [{ name: c, command: [sleep, infinity] }]
`,
  );
  await ambitOk(['apply', '-f', file]);
  const pods = await eventually('4 running spread pods', async () => {
    const p = (await status()).pods.filter((x) => x.labels.app === 'spread');
    return p.length === 4 && p.every((x) => x.phase === 'Running') && p;
  });
  assert.equal(pods.filter((p) => p.node === 'node-1').length, 2);
  await ambitOk(['delete', '-f', file]);
  await eventually('spread pods gone', async () => (await status()).pods.every((x) => x.labels.app !== 'spread'));
  const netns = await eventually('their namespaces gone', async () => {
    const out = (await import('node:child_process')).execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    return !pods.some((p) => out.includes(p.name)) && out;
  });
  assert.ok(netns);
  // CNI DEL released their addresses: host-local holds exactly the remaining pods' addresses.
  for (const node of ['node-1', 'node-2']) assert.equal(leases(node), await podIps(node), `${node}'s leases`);
});

test("a pod whose CNI ADD fails stays Pending with the plugin's error (status and Event), leaves nothing behind, and starts once the chain works", async () => {
  // A configuration that sorts first, which the kubelet reads at the next ADD: the node's own, with
  // a plugin that does not exist chained after the bridge, so an ADD takes an address and makes a
  // veth before it fails, and its DEL must give them back.
  const confDir = join(stateDir, 'nodes', 'node-2', 'cni', 'net.d');
  const broken = join(confDir, '00-broken.conflist');
  const conflist = JSON.parse(readFileSync(join(confDir, '10-ambit-local.conflist'), 'utf8')) as { plugins: object[] };
  writeFileSync(broken, JSON.stringify({ ...conflist, plugins: [...conflist.plugins, { type: 'no-such-plugin' }] }));
  const file = join(tmp, 'late.yaml');
  writeFileSync(file, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: late, namespace: shop }\nspec:\n  selector: { matchLabels: { app: late } }\n  template:\n    metadata: { labels: { app: late } }\n    spec:\n      nodeName: node-2\n      containers: [{ name: c, command: [sleep, infinity] }]\n');
  try {
    const leasesBefore = leases('node-2');
    await ambitOk(['apply', '-f', file]);
    const pod = await eventually('the pod pending with the plugin error', async () => {
      const p = (await status()).pods.find((x) => x.labels.app === 'late');
      return p?.message?.includes('plugin type "no-such-plugin" not found') && p;
    });
    assert.is(pod.phase, 'Pending');
    assert.is(pod.ip, '');
    const events = JSON.parse(await ambitOk(['get', 'events', '-n', 'shop', '-o', 'json'])) as { items: { reason: string; type: string; message: string; involvedObject: { name: string } }[] };
    const event = events.items.find((e) => e.involvedObject.name === pod.name && e.reason === 'FailedCreatePodSandBox');
    assert.ok(event, 'a FailedCreatePodSandBox Event on the pod');
    assert.is(event.type, 'Warning');
    assert.match(event.message, 'no-such-plugin');
    // Each failed ADD was deleted again: between attempts (1 s, 2 s, 4 s ... apart) the pod has no
    // namespace, the node no extra veth and host-local no lease for it.
    const links = async () => (await sh('ip -n ambit-node-node-2 -o link show master br0')).split('\n').filter(Boolean).length;
    await eventually('nothing of the pod between two attempts', async () => {
      const linksBefore = (await podIps('node-2')).length;
      return !(await sh('ip netns list')).includes(pod.name) && JSON.stringify(leases('node-2')) === JSON.stringify(leasesBefore) && (await links()) === linksBefore;
    });
  } finally {
    rmSync(broken, { force: true });
  }
  // Retried with backoff (1 s doubling), as the kubelet retries a sandbox.
  const running = await eventually('the pod running once the chain works', async () => {
    const p = (await status()).pods.find((x) => x.labels.app === 'late');
    return p?.phase === 'Running' && p;
  }, 40_000);
  assert.ok(running.ip.startsWith('10.244.2.'), running.ip);
  assert.is(running.message, undefined);
  await ambitOk(['delete', '-f', file]);
  await eventually('late gone', async () => !(await status()).pods.some((p) => p.labels.app === 'late'));
});

test("a node's bridge keeps its address when pods come and go, so the pods' cached gateway stays right", async () => {
  // A Linux bridge takes the lowest address of its ports unless one is set: a new pod's veth could
  // move it, and every pod of the node would send to a stale gateway address for seconds.
  const bridge = async () => (await sh('ip netns exec ambit-node-node-1 sh -c "cat /sys/class/net/br0/address /sys/class/net/br0/addr_assign_type"')).trim().split('\n');
  const [before, assignType] = await bridge();
  assert.is(assignType, '3', 'the address is set, not taken from a port (NET_ADDR_SET)');
  const file = join(tmp, 'more.yaml');
  writeFileSync(file, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: more, namespace: shop }\nspec:\n  replicas: 3\n  selector: { matchLabels: { app: more } }\n  template:\n    metadata: { labels: { app: more } }\n    spec:\n      nodeName: node-1\n      containers: [{ name: c, command: [sleep, infinity] }]\n');
  await ambitOk(['apply', '-f', file]);
  await eventually('the pods running', async () => (await status()).pods.filter((p) => p.labels.app === 'more' && p.phase === 'Running').length === 3);
  assert.is((await bridge())[0], before);
  await ambitOk(['delete', 'deployment', 'more', '-n', 'shop']);
  await eventually('the pods gone', async () => !(await status()).pods.some((p) => p.labels.app === 'more'));
  assert.is((await bridge())[0], before);
});

test('a container that exits is restarted, and the Service works again', async () => {
  const get = async () => JSON.parse(await ambitOk(['get', 'pods', '-n', 'shop', '-o', 'json'])) as { items: Pod[] };
  const echo = (await get()).items.find((p) => p.metadata.labels?.app === 'echo')!;
  const before = echo.status.containerStatuses[0]!;
  const pid = before.pid!;
  process.kill(pid, 'SIGKILL');
  let last: unknown;
  const after = await eventually(
    'echo restarted',
    async () => {
      const p = (await get()).items.find((x) => x.metadata.name === echo.metadata.name)!;
      const c = p.status.containerStatuses[0]!;
      last = p.status;
      return c.restartCount > before.restartCount && c.state === 'running' && c.pid !== pid && p;
    },
    20_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status ${JSON.stringify(last)}`);
  });
  assert.is(after.status.restarts, before.restartCount + 1);
  await eventually('echo answers', async () => {
    const r = await inClient(['node', '-e', "const s=require('net').connect(9000,'echo.shop',()=>s.end('again'));s.pipe(process.stdout)"]);
    return r.stdout === 'again';
  });
});

test('pods keep serving while the controller is down, and `ambit up` brings it back without new pods', async () => {
  const before = await status();
  process.kill(clusterProcesses().controllerPids[0]!, 'SIGKILL');
  // The cluster (its API, pods and agents) is another process: it still answers, and says the controller does not.
  const down = await ambitOk(['status']);
  assert.match(down, 'The controller does not answer');
  assert.match(down, 'ControllerUnreachable');
  // `ambit exec` asks the controller for the pod, so enter the client pod's namespace directly.
  const web = before.services.find((x) => x.name === 'web')!;
  const client = before.pods.find((p) => p.namespace === 'client')!;
  const out = await sh(`nsenter --net=/run/netns/ambit-pod-client.${client.name} curl -sS --max-time 5 http://${web.clusterIP}/`);
  assert.match(out, /^web v[12] /);
  const up = await ambitOk(['up']);
  assert.match(up, 'restarting the controller');
  const after = await status();
  assert.equal(after.pods.map((p) => `${p.name} ${p.ip}`), before.pods.map((p) => `${p.name} ${p.ip}`));
});

test("the cluster's own process (the kubelet's side) restarted adopts its pods with their leases, and a new pod gets an address no other pod has", async () => {
  const before = await status();
  process.kill(clusterProcesses().clusterPid, 'SIGKILL');
  const up = await ambitOk(['up']);
  assert.match(up, 'its own process');
  const after = await status();
  assert.equal(after.pods.map((p) => `${p.name} ${p.ip}`), before.pods.map((p) => `${p.name} ${p.ip}`));
  for (const node of ['node-1', 'node-2']) assert.equal(leases(node), await podIps(node), `${node}'s leases after the restart`);
  const file = join(tmp, 'after-restart.yaml');
  writeFileSync(file, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: fresh, namespace: shop }\nspec:\n  replicas: 2\n  selector: { matchLabels: { app: fresh } }\n  template:\n    metadata: { labels: { app: fresh } }\n    spec:\n      nodeName: node-1\n      containers: [{ name: c, command: [sleep, infinity] }]\n');
  await ambitOk(['apply', '-f', file]);
  const all = await eventually('the new pods running', async () => {
    const s = await status();
    return s.pods.filter((p) => p.labels.app === 'fresh' && p.phase === 'Running').length === 2 && s.pods;
  });
  assert.is(new Set(all.map((p) => p.ip)).size, all.length, `every pod has its own address: ${all.map((p) => p.ip).join(' ')}`);
  assert.equal(leases('node-1'), await podIps('node-1'));
  await ambitOk(['delete', '-f', file]);
  await eventually('fresh gone', async () => !(await status()).pods.some((p) => p.labels.app === 'fresh'));
});

test('a Service without endpoints refuses connections at once', async () => {
  const file = join(tmp, 'empty.yaml');
  writeFileSync(file, 'apiVersion: v1\nkind: Service\nmetadata: { name: empty, namespace: shop }\nspec:\n  selector: { app: nobody }\n  ports: [{ port: 80 }]\n');
  await ambitOk(['apply', '-f', file]);
  const ip = (await status()).services.find((s) => s.name === 'empty')!.clusterIP;
  const script = `require('net').connect(80,'${ip}').on('error',(e)=>{console.log(e.code)}).on('connect',()=>console.log('CONNECTED'))`;
  const r = await eventually('refused', async () => {
    const x = await inClient(['node', '-e', script]);
    return x.stdout.trim() !== 'CONNECTED' && x;
  });
  assert.is(r.stdout.trim(), 'ECONNREFUSED');
});

test('ambit down removes every namespace, link, route, cgroup and process', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test('ambit down after a crashed ambit up still removes everything, and up then recovers', async () => {
  const child = spawn(join(root, 'bin', 'ambit'), ['up'], { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, stdio: 'ignore' });
  // Kill it part-way: after nodes exist, before it finishes.
  await eventually('nodes being made', async () => (await leftovers()).some((l) => l.startsWith('netns ambit-node')), 10_000);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const up = await ambitOk(['up', '--no-samples']);
  assert.match(up, 'incomplete cluster');
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
  // And a crash followed directly by down.
  const again = spawn(join(root, 'bin', 'ambit'), ['up'], { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, stdio: 'ignore' });
  await eventually('nodes being made', async () => (await leftovers()).some((l) => l.startsWith('netns ambit-node')), 10_000);
  again.kill('SIGKILL');
  await new Promise((r) => again.on('exit', r));
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
