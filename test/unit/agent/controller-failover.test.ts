// An agent given two controller replicas (two real push servers over TLS WebSockets, each with its
// own view) uses the first that answers, and when that one goes away moves to the other and gets
// its configuration from it, keeping what it had meanwhile.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { ShareBuilder } from '../../../controller/push/share.js';
import { PushServer } from '../../../controller/push/server.js';
import { fixedTokens } from '../../../controller/push/auth.js';
import { AgentState } from '../../../agent/state/state.js';
import { ControllerConnection } from '../../../agent/control/client.js';
import { ControllerAddresses } from '../../../agent/control/addresses.js';
import type { Pod, Resource } from '../../../shared/resources/types.js';
import { until } from '../until.js';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'ambit-failover-'));
const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
const serving = ca.issueServing(['127.0.0.1'], []);

const pod = (name: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'shop', labels: { app: name } },
  spec: { nodeName: 'n1', containers: [{ name: 'c', command: ['x'] }] },
  status: { phase: 'Running', podIP: '10.0.1.2', hostIP: '', restarts: 0, containerStatuses: [] },
});

/** A replica whose view holds one pod, named after the replica, so the agent's state says who served it. */
async function replica(name: string): Promise<{ push: PushServer; url: string }> {
  const share = new ShareBuilder('istio-system');
  share.load([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } } as Resource, pod(name)], 1);
  const push = new PushServer({ share, nodes: ['n1'], checkToken: fixedTokens(new Map([['n1', 't1']])), tls: { key: serving.keyPem, cert: serving.certPem }, log });
  push.server.listen(0, '127.0.0.1');
  await once(push.server, 'listening');
  return { push, url: `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}` };
}

test('an agent moves to the next replica when its controller goes away, and takes that one configuration', async () => {
  const a = await replica('from-a');
  const b = await replica('from-b');
  const addresses = new ControllerAddresses([a.url, b.url]);
  const state = new AgentState('n1');
  const conn = new ControllerConnection({ url: addresses.current, failed: addresses.failed, node: 'n1', token: () => 't1', ca: () => [ca.rootPem], state, log, minBackoffMs: 20, maxBackoffMs: 200 });
  conn.start();
  try {
    await until('served by replica a', () => [...state.workloads.values()].some((w) => w.name === 'from-a'));
    assert.is(addresses.current(), a.url);
    a.push.close();
    await until('served by replica b', () => [...state.workloads.values()].some((w) => w.name === 'from-b'));
    assert.is(addresses.current(), b.url);
    assert.ok(b.push.agents().find((x) => x.node === 'n1')?.connected);
  } finally {
    conn.stop();
    b.push.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an agent with no controller address is refused at start, saying what to give', () => {
  assert.throws(() => new ControllerAddresses([]), /--controller wss:\/\/HOST:PORT/);
});

test.run();
