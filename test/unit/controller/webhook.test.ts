// The controller as the API server's validating admission webhook, end to end with the real kubectl:
// a policy no proxy can honour is refused by the webhook naming the field, with nothing stored; one
// a node proxy cannot fully enforce is stored with kubectl printing the webhook's warning; and the
// status writer then says who enforces what was applied through the API.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:https';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { webhookConfiguration, webhookServer } from '../../../controller/admission/webhook.js';
import { ClusterCache, controllerKinds } from '../../../controller/kube/cache.js';
import { ControllerWriter } from '../../../controller/kube/view.js';
import { PolicyStatusWriter } from '../../../controller/waypoints/policy-status.js';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { createLogger } from '../../../shared/log.js';
import { ns, startApi, type TestApi } from '../apiserver/helpers.js';
import { until } from '../until.js';

const log = createLogger('test', 'silent');
let t: TestApi;
let dir: string;
let server: Server;
let client: KubeClient;

test.before.each(async () => {
  t = await startApi();
  dir = mkdtempSync(join(tmpdir(), 'ambit-webhook-'));
  const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
  const serving = ca.issueServing(['127.0.0.1'], []);
  server = webhookServer({ key: serving.keyPem, cert: serving.certPem }, 'istio-system', log);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  client = new KubeClient(loadKubeconfig(t.kubeconfig));
  await new ControllerWriter(client).apply([webhookConfiguration({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/validate` }, ca.rootPem)]);
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
});
test.after.each(async () => {
  client.close();
  server.close();
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

const policy = (name: string, spec: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: ${name}, namespace: shop }\nspec:\n${spec}`;

async function kubectlApply(yaml: string) {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return t.kubectl('apply', '-f', file);
}

test('kubectl apply of a policy no proxy can honour is denied by the webhook, naming the field; nothing is stored', async () => {
  // Keys from outside the cluster: the schema allows a jwksUri, the mesh cannot fetch it.
  const r = await kubectlApply(
    'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: { name: ext, namespace: shop }\nspec:\n  targetRefs: [{ group: "", kind: Service, name: web }]\n  jwtRules: [{ issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks.json" }]\n',
  );
  assert.is.not(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, 'admission webhook "validation.ambit.dev" denied the request', r.stderr);
  assert.match(r.stderr, 'spec.jwtRules[0].jwksUri');
  assert.is(t.store.get('RequestAuthentication', 'shop', 'ext'), undefined);
});

test('a policy a node proxy cannot fully enforce is stored, kubectl prints the warning, and its status says who enforces it', async () => {
  const r = await kubectlApply(policy('paths', '  selector: { matchLabels: { app: web } }\n  action: DENY\n  rules: [{ to: [{ operation: { paths: ["/admin"] } }] }]\n'));
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /Warning: .*paths/);
  const stored = t.store.get('AuthorizationPolicy', 'shop', 'paths')!;
  assert.is(stored.status, undefined, 'the API server writes no review of its own');
  const cache = new ClusterCache(client, controllerKinds, log);
  await cache.start();
  const writer = new PolicyStatusWriter(cache, new ControllerWriter(client), log, 'istio-system');
  writer.start();
  try {
    await until('the status written', () => (t.store.get('AuthorizationPolicy', 'shop', 'paths')!.status as { enforcedBy?: string } | undefined)?.enforcedBy);
    const status = t.store.get('AuthorizationPolicy', 'shop', 'paths')!.status as { enforcedBy: string; warnings: string[] };
    assert.is(status.enforcedBy, 'node proxies (L4)');
    assert.match(status.warnings.join('\n'), 'paths');
  } finally {
    writer.stop();
    cache.stop();
  }
});

test.run();
