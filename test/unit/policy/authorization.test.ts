import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Authorizer } from '../../../shared/policy/index.js';
import type { PolicyEntry } from '../../../shared/protocol/config.js';
import { allowFrom, authz, mtls, plaintext, workload } from './helpers.js';

const web = workload('web');
const db = workload('db');

function authorizer(...policies: PolicyEntry[]): Authorizer {
  const a = new Authorizer('istio-system');
  a.update(policies);
  return a;
}

test('without any AuthorizationPolicy every connection is allowed', () => {
  const d = authorizer().authorize(web, plaintext());
  assert.ok(d.allowed);
  assert.is(d.reason, 'no ALLOW policy applies');
});

test('a matching DENY policy wins over a matching ALLOW policy', () => {
  const a = authorizer(
    authz('allow-front', allowFrom({ namespaces: ['front'] })),
    authz('deny-legacy', { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/front/sa/legacy'] } }] }] }),
  );
  const d = a.authorize(web, mtls('front', 'legacy'));
  assert.equal({ ...d }, { allowed: false, reason: 'DENY policy shop/deny-legacy rule 0', policy: 'shop/deny-legacy', rule: 0, action: 'DENY' });
  assert.is(a.authorize(web, mtls('front', 'web')).reason, 'ALLOW policy shop/allow-front rule 0');
});

test('DENY policies alone allow what they do not match', () => {
  const a = authorizer(authz('deny-legacy', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['legacy'] } }] }] }));
  assert.ok(a.authorize(web, mtls('front')).allowed);
  assert.not.ok(a.authorize(web, mtls('legacy')).allowed);
});

test('once an ALLOW policy applies, a connection it does not match is denied', () => {
  const a = authorizer(authz('allow-front', allowFrom({ namespaces: ['front'] })));
  const d = a.authorize(web, mtls('other'));
  assert.not.ok(d.allowed);
  assert.is(d.reason, 'no ALLOW policy matched');
});

test('the decision names the rule of the policy that matched', () => {
  const a = authorizer(authz('allow-web', { rules: [{ from: [{ source: { namespaces: ['a'] } }] }, { from: [{ source: { namespaces: ['front'] } }] }] }));
  const d = a.authorize(web, mtls('front'));
  assert.equal([d.allowed, d.policy, d.rule, d.action], [true, 'shop/allow-web', 1, 'ALLOW']);
});

test('spec: {} allows nothing: every connection to the namespace is denied', () => {
  const a = authorizer(authz('allow-nothing', {}));
  assert.not.ok(a.authorize(web, mtls('front')).allowed);
  assert.not.ok(a.authorize(db, plaintext()).allowed);
});

test('an empty rule matches everything: rules: [{}] allows every connection', () => {
  const a = authorizer(authz('allow-nothing', {}), authz('allow-all', { rules: [{}] }));
  assert.ok(a.authorize(web, plaintext()).allowed);
});

test('a DENY policy without rules denies nothing', () => {
  assert.ok(authorizer(authz('deny', { action: 'DENY' })).authorize(web, plaintext()).allowed);
});

test('a policy with a selector applies only to the workloads whose labels match', () => {
  const a = authorizer(authz('web-only', { selector: { matchLabels: { app: 'web' } }, ...allowFrom({ namespaces: ['front'] }) }));
  assert.not.ok(a.authorize(web, mtls('other')).allowed);
  assert.ok(a.authorize(db, mtls('other')).allowed);
  assert.ok(a.authorize(workload('unlabelled', {}), mtls('other')).allowed);
});

test('a policy applies to the workloads of its own namespace only', () => {
  const a = authorizer(authz('allow-nothing', {}, 'shop'));
  assert.ok(a.authorize(workload('web', { app: 'web' }, 'billing'), mtls()).allowed);
});

test('a policy in the root namespace applies to workloads of every namespace', () => {
  const a = authorizer(authz('deny-plaintext', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] }, 'istio-system'));
  assert.is(a.authorize(workload('web', {}, 'billing'), plaintext()).reason, 'DENY policy istio-system/deny-plaintext rule 0');
  assert.ok(a.authorize(workload('web', {}, 'billing'), mtls()).allowed);
});

test('a root-namespace policy with a selector applies to matching workloads in any namespace', () => {
  const a = authorizer(authz('v1-nothing', { selector: { matchLabels: { version: 'v1' } } }, 'istio-system'));
  assert.not.ok(a.authorize(workload('web', { version: 'v1' }, 'billing'), mtls()).allowed);
  assert.ok(a.authorize(workload('web', { version: 'v2' }, 'billing'), mtls()).allowed);
});

test('policies with targetRef or targetRefs are for waypoints: the node proxy ignores them without a warning (they are enforced, at the waypoint)', () => {
  const a = authorizer(
    authz('waypoint', { action: 'DENY', targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [{}] }),
    authz('gateway', { targetRef: { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw' }, rules: [{ to: [{ operation: { paths: ['/x'] } }] }] }),
  );
  assert.ok(a.authorize(web, plaintext()).allowed, 'a DENY-all for the waypoint does not deny at the node proxy');
  assert.equal(a.warnings(), []);
});

test('CUSTOM and AUDIT policies do not affect the decision and are reported', () => {
  const a = authorizer(authz('audit', { action: 'AUDIT', rules: [{}] }), authz('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }));
  assert.ok(a.authorize(web, plaintext()).allowed);
  assert.match(a.warnings('shop/audit')[0]!.message, /does not enforce the AUDIT action/);
  assert.match(a.warnings('shop/ext')[0]!.message, /does not enforce the CUSTOM action/);
});

test('an ALLOW rule using L7 attributes never matches, and the operator is told which attributes', () => {
  const a = authorizer(authz('allow-get', { rules: [{ from: [{ source: { namespaces: ['front'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api*'] } }] }] }));
  assert.not.ok(a.authorize(web, mtls('front')).allowed);
  const [w] = a.warnings('shop/allow-get');
  assert.is(w!.rule, 0);
  assert.match(w!.message, /uses methods, paths, which the node proxy cannot see at L4: this ALLOW rule never matches/);
});

test('the other rules of an ALLOW policy still allow when one rule uses L7 attributes', () => {
  const a = authorizer(authz('mixed', { rules: [{ when: [{ key: 'request.headers[x-user]', values: ['admin'] }] }, { from: [{ source: { namespaces: ['front'] } }] }] }));
  assert.is(a.authorize(web, mtls('front')).reason, 'ALLOW policy shop/mixed rule 1');
  assert.not.ok(a.authorize(web, mtls('other')).allowed);
  assert.equal(a.warnings().map((w) => w.rule), [0]);
});

test('a DENY rule using L7 attributes is enforced without them, so it denies more, with a warning', () => {
  const a = authorizer(authz('deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'], ports: ['8080'] } }] }] }));
  assert.not.ok(a.authorize(web, mtls('front')).allowed, 'every connection to 8080 is denied, whatever its method');
  assert.ok(a.authorize(web, mtls('front', 'web', { destinationPort: 9090 })).allowed);
  assert.match(a.warnings()[0]!.message, /uses methods, .*this DENY rule is enforced without them, so it denies more than written$/);
});

test('a DENY rule made only of L7 attributes denies every connection, and says so', () => {
  const a = authorizer(authz('deny-jwt', { action: 'DENY', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }], when: [{ key: 'request.auth.claims[iss]', values: ['x'] }] }] }));
  assert.not.ok(a.authorize(web, mtls('front')).allowed);
  assert.not.ok(a.authorize(web, plaintext()).allowed);
  assert.match(a.warnings()[0]!.message, /request\.auth\.claims\[iss\], requestPrincipals.*every connection to the workloads it selects/);
});

test('remoteIpBlocks is an L7 attribute for the node proxy, as in ztunnel', () => {
  const a = authorizer(authz('allow-remote', allowFrom({ remoteIpBlocks: ['10.0.0.0/8'] })));
  assert.not.ok(a.authorize(web, mtls()).allowed);
  assert.match(a.warnings()[0]!.message, /uses remoteIpBlocks/);
});

test('an invalid ipBlock makes its ALLOW rule never match, with a warning', () => {
  const a = authorizer(authz('allow-net', allowFrom({ ipBlocks: ['10.244.0.0/16', '10.300.0.0/16'] })));
  assert.not.ok(a.authorize(web, mtls()).allowed);
  assert.match(a.warnings()[0]!.message, /rules\[0\]\.from\[0\]\.source\.ipBlocks "10\.300\.0\.0\/16" is not an IPv4 address or CIDR block: this ALLOW rule never matches/);
});

test('an invalid port makes its DENY rule drop that field, so it denies more, with a warning', () => {
  const a = authorizer(authz('deny-port', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['legacy'] } }], to: [{ operation: { ports: ['70000'] } }] }] }));
  assert.not.ok(a.authorize(web, mtls('legacy')).allowed);
  assert.ok(a.authorize(web, mtls('front')).allowed);
  assert.match(a.warnings()[0]!.message, /ports "70000" is not a port number \(0-65535\): this DENY rule is enforced without that field/);
});

test('a when condition without values or notValues is reported and fails closed', () => {
  const a = authorizer(authz('allow-when', { rules: [{ when: [{ key: 'source.ip' }] }] }));
  assert.not.ok(a.authorize(web, mtls()).allowed);
  assert.match(a.warnings()[0]!.message, /needs values or notValues/);
});

test('update replaces every policy and skips other kinds', () => {
  const a = authorizer(authz('allow-nothing', {}));
  a.update([{ kind: 'RequestAuthentication', name: 'jwt', namespace: 'shop', spec: { jwtRules: [{ issuer: 'x' }] } }, { kind: 'PeerAuthentication', name: 'strict', namespace: 'shop', spec: {} }]);
  assert.ok(a.authorize(web, plaintext()).allowed);
  assert.equal(a.warnings(), []);
});

test('decisions are shared frozen values, so a decision allocates none', () => {
  const a = authorizer(authz('allow-front', allowFrom({ namespaces: ['front'] })));
  const first = a.authorize(web, mtls('front'));
  assert.is(a.authorize(web, mtls('front')), first);
  assert.ok(Object.isFrozen(first));
});

test.run();
