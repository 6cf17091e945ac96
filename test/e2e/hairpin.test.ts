// Hairpin without the mesh: a pod that calls its own Service and is picked as the endpoint gets its
// answer, as with kube-proxy and the bridge plugin's hairpin mode. The flow is masqueraded to the
// node bridge's address (the only way the reply comes back through the node's NAT), and only that
// flow: another pod calling the same Service is still seen by its own address.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, type PodStatus, status } from './helpers.js';

let tmp = '';

/** An HTTP request from inside a pod; the body on success, `ERR <curl exit code>` otherwise. */
async function curl(pod: PodStatus, url: string): Promise<string> {
  const r = await ambit(['exec', '-n', pod.namespace, pod.name, '--', 'curl', '-sS', '--max-time', '5', url]);
  return r.code === 0 ? r.stdout : `ERR ${r.code} ${r.stderr.trim()}`;
}

/** One replica on node-1, so the caller shares the server's node and bridge. */
const deployment = (app: string, command: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${app}, namespace: loop }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${app} } }
  template:
    metadata: { labels: { app: ${app} } }
    spec:
      nodeName: node-1
      containers: [{ name: c, command: ${command} }]
---
`;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-hairpin-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--no-samples']);
  // Not enrolled: plain kube-proxy behaviour, no agent in the path.
  await applyAndWait(tmp, `apiVersion: v1
kind: Namespace
metadata: { name: loop }
---
${deployment('self', '[ambit, sample, http-server, --app, self, --version, v1, --port, "8080"]')}${deployment('caller', '[sleep, infinity]')}apiVersion: v1
kind: Service
metadata: { name: self, namespace: loop }
spec:
  selector: { app: self }
  ports: [{ port: 80, targetPort: 8080 }]
`);
  await eventually('both pods running and the Service with its endpoint', async () => {
    const s = await status();
    return s.pods.length === 2 && s.pods.every((p) => p.phase === 'Running') && s.services.find((x) => x.name === 'self')?.ports[0]?.endpoints.length === 1;
  }, 30_000);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('a pod calling its own Service, with itself as the only endpoint, gets its answer (masqueraded to the node bridge)', async () => {
  const s = await status();
  const self = s.pods.find((p) => p.labels.app === 'self')!;
  const svc = s.services.find((x) => x.name === 'self')!;
  const node = s.nodes.find((n) => n.name === self.node)!;
  const gateway = node.podCIDR.replace('0/24', '1');
  for (const url of [`http://self.loop/by-name`, `http://${svc.clusterIP}/by-ip`]) {
    const body = await curl(self, url);
    assert.match(body, `pod=${self.name} ip=${self.ip}`, `${url}: ${body}`);
    assert.match(body, `client=${gateway} `, `${url}: the hairpinned flow comes from the node bridge (${body})`);
  }
});

test('another pod calling the same Service is seen by its own address: only the hairpinned flow is masqueraded', async () => {
  const s = await status();
  const caller = s.pods.find((p) => p.labels.app === 'caller')!;
  const self = s.pods.find((p) => p.labels.app === 'self')!;
  const body = await curl(caller, 'http://self.loop/from-caller');
  assert.match(body, `pod=${self.name}`);
  assert.match(body, `client=${caller.ip} `, body);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
