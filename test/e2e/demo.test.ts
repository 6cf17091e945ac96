// `ambit demo`, the tour of the mesh that `bash scripts/up.sh` ends with, held to its claims: the
// request is readable on the wire before enrolment and not after, the metrics and Prometheus say
// mutual_tls, the DENY refuses the caller and `ambit explain` names the policy, the waypoint splits
// a canary, and the cluster is left as the tour found it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Namespace } from '../../shared/resources/types.js';
import { ambit, ambitOk, leftovers } from './helpers.js';

const enrolled = async () => {
  const { items } = JSON.parse(await ambitOk(['get', 'namespaces', '-o', 'json'])) as { items: Namespace[] };
  return items.filter((n) => n.metadata.labels?.['ambit.dev/dataplane-mode'] === 'ambient').map((n) => n.metadata.name).sort();
};

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('the tour shows plaintext before enrolment and only HBONE after, the denial and its explanation, and undoes what it did', async () => {
  await ambitOk(['up']);
  const r = await ambit(['demo'], 120_000);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const out = r.stdout;
  assert.match(out, /the request, readable on the wire: "GET \/demo-plain-\w+ HTTP\/1\.1"/);
  assert.match(out, /\d+ packets to 10\.250\.0\.\d:15008, 0 to port 8080; the path "\/demo-mesh-\w+" is not readable on the wire/);
  assert.match(out, /istio_tcp_connections_opened_total\{reporter="destination",source_workload="client",destination_workload="web-v\d".*connection_security_policy="mutual_tls"/);
  assert.match(out, /denied: DENY policy shop\/demo-deny-client rule 0/);
  assert.match(out, /client -> web-v\d +security=mutual_tls +flags=- /, 'Prometheus has the tour\'s connections');
  assert.match(out, /client -> web-v\d +security=mutual_tls +flags=DENY /, 'and the denied one');
  for (const check of ['plaintext on the wire before enrolment', 'no plaintext on the wire after enrolment', 'the DENY policy refused the client', 'ambit explain named the policy', 'Prometheus counts the denial (response_flags DENY)', 'the waypoint split web 90/10 between v1 and v2 (an HTTPRoute)']) {
    assert.match(out, `ok   ${check}`);
  }
  assert.equal(await enrolled(), [], 'the tour unenrolled what it enrolled');
  assert.not.match(await ambitOk(['get', 'authorizationpolicies', '-A']), 'demo-deny-client');
  assert.match(out, /\d+ answered by web-v1, \d+ by web-v2, 0 failed/);
  assert.not.match(await ambitOk(['get', 'gateways', '-A']), 'demo-waypoint', 'the tour removed its waypoint');
  assert.not.match(await ambitOk(['get', 'services', '-n', 'shop']), 'web-v1', 'and the canary Services');
});

test('a namespace enrolled before the tour is enrolled after it', async () => {
  await ambitOk(['enroll', 'shop']);
  const r = await ambit(['demo'], 120_000);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, 'unenrolled shop for step 1 (enrolled again at the end)');
  assert.equal(await enrolled(), ['shop']);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
