// Reading where the API server is: kubeconfig contexts, certificate and token files relative to
// the kubeconfig, the in-cluster ServiceAccount mount with a token the kubelet rotates, and clear
// errors for what is missing or not supported.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { inClusterConfig, loadKubeconfig, tokenFile } from '../../../shared/kube/config.js';

let dir: string;
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-kubeconfig-'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(doc: unknown): string {
  const path = join(dir, 'config');
  writeFileSync(path, stringify(doc));
  return path;
}

const base = {
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [
    { name: 'a', cluster: { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA-A') } },
    { name: 'b', cluster: { server: 'https://10.0.0.1:443', 'certificate-authority': 'ca-b.pem' } },
  ],
  users: [
    { name: 'token', user: { token: 'secret' } },
    { name: 'cert', user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') } },
  ],
  contexts: [
    { name: 'one', context: { cluster: 'a', user: 'token' } },
    { name: 'two', context: { cluster: 'b', user: 'cert', namespace: 'shop' } },
  ],
  'current-context': 'one',
};

test('the current context gives the server, its CA and the bearer token', () => {
  const c = loadKubeconfig(kubeconfig(base));
  assert.equal([c.server, c.ca, c.token?.(), c.namespace], ['https://127.0.0.1:6443', 'CA-A', 'secret', 'default']);
});

test('a named context with a client certificate and a CA file beside the kubeconfig', () => {
  writeFileSync(join(dir, 'ca-b.pem'), 'CA-B');
  const c = loadKubeconfig(kubeconfig(base), 'two');
  assert.equal([c.server, c.ca, c.cert, c.key, c.token, c.namespace], ['https://10.0.0.1:443', 'CA-B', 'CERT', 'KEY', undefined, 'shop']);
});

test('what cannot be used is refused, naming it', () => {
  assert.throws(() => loadKubeconfig(kubeconfig(base), 'three'), /no context named "three"/);
  assert.throws(() => loadKubeconfig(join(dir, 'missing')), /cannot read the kubeconfig/);
  const exec = { ...base, users: [{ name: 'token', user: { exec: { command: 'aws' } } }] };
  assert.throws(() => loadKubeconfig(kubeconfig(exec)), /exec and auth-provider credentials are not supported/);
  const insecure = { ...base, clusters: [{ name: 'a', cluster: { server: 'https://x', 'insecure-skip-tls-verify': true } }] };
  assert.throws(() => loadKubeconfig(kubeconfig(insecure)), /insecure-skip-tls-verify is not supported/);
});

test('a rotating token file is read again after a minute, or at once when reloaded', () => {
  const path = join(dir, 'token');
  writeFileSync(path, 'first\n');
  let now = 0;
  const { token, reloadToken } = tokenFile(path, () => now);
  assert.is(token(), 'first');
  writeFileSync(path, 'second');
  now = 30_000;
  assert.is(token(), 'first', 'within the minute the token read is kept');
  now = 61_000;
  assert.is(token(), 'second');
  writeFileSync(path, 'third');
  reloadToken();
  assert.is(token(), 'third');
});

test('in a pod: the service host and the mounted ServiceAccount files', () => {
  writeFileSync(join(dir, 'token'), 'sa-token');
  writeFileSync(join(dir, 'ca.crt'), 'CLUSTER-CA');
  writeFileSync(join(dir, 'namespace'), 'ambit-system\n');
  const c = inClusterConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir);
  assert.equal([c.server, c.ca, c.token?.(), c.namespace], ['https://10.96.0.1:443', 'CLUSTER-CA', 'sa-token', 'ambit-system']);
  assert.throws(() => inClusterConfig({}, dir), /not running in a pod/);
  rmSync(join(dir, 'token'));
  assert.throws(() => inClusterConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir), /cannot read the ServiceAccount token/);
});

test.run();
