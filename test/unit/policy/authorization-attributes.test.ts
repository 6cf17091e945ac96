import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Authorizer, type ConnectionAttributes } from '../../../shared/policy/index.js';
import { ipRange, ipv4 } from '../../../shared/policy/match.js';
import { allowFrom, authz, mtls, plaintext, workload } from './helpers.js';

const web = workload('web');

/** Whether an ALLOW policy with this spec lets each connection through. */
function allows(spec: unknown, ...conns: ConnectionAttributes[]): boolean[] {
  const a = new Authorizer();
  a.update([authz('under-test', spec)]);
  assert.equal(a.warnings(), [], 'the policy compiles without warnings');
  return conns.map((c) => a.authorize(web, c).allowed);
}

test('principals match the peer identity without spiffe://, and never a plaintext connection', () => {
  assert.equal(allows(allowFrom({ principals: ['cluster.local/ns/front/sa/web'] }), mtls('front', 'web'), mtls('front', 'api'), plaintext()), [true, false, false]);
});

test('notPrincipals: ["*"] matches exactly the plaintext connections', () => {
  assert.equal(allows(allowFrom({ notPrincipals: ['*'] }), mtls(), plaintext()), [false, true]);
});

test('principals support prefix, suffix and presence matching', () => {
  assert.equal(allows(allowFrom({ principals: ['cluster.local/ns/front/*'] }), mtls('front', 'a'), mtls('back', 'a')), [true, false]);
  assert.equal(allows(allowFrom({ principals: ['*/sa/web'] }), mtls('front', 'web'), mtls('back', 'web'), mtls('back', 'api')), [true, true, false]);
  assert.equal(allows(allowFrom({ principals: ['*'] }), mtls(), plaintext()), [true, false]);
});

test('namespaces and notNamespaces match the peer namespace; a plaintext connection has none', () => {
  assert.equal(allows(allowFrom({ namespaces: ['front', 'team-*'] }), mtls('front'), mtls('team-a'), mtls('back'), plaintext()), [true, true, false, false]);
  assert.equal(allows(allowFrom({ notNamespaces: ['back'] }), mtls('front'), mtls('back'), plaintext()), [true, false, true]);
});

test('serviceAccounts take <namespace>/<name> or a name in the policy namespace, in any trust domain', () => {
  const spec = allowFrom({ serviceAccounts: ['front/web', 'worker'] });
  const otherDomain = mtls('front', 'web', { sourcePrincipal: 'example.org/ns/front/sa/web' });
  assert.equal(allows(spec, mtls('front', 'web'), otherDomain, mtls('shop', 'worker'), mtls('front', 'worker'), plaintext()), [true, true, true, false, false]);
  assert.equal(allows(allowFrom({ notServiceAccounts: ['front/web'] }), mtls('front', 'web'), mtls('front', 'api'), plaintext()), [false, true, true]);
});

test('a wildcard in serviceAccounts is refused, as the API says', () => {
  const a = new Authorizer();
  a.update([authz('sa', allowFrom({ serviceAccounts: ['front/*'] }))]);
  assert.not.ok(a.authorize(web, mtls('front', 'web')).allowed);
  assert.match(a.warnings()[0]!.message, /serviceAccounts "front\/\*" is not a service account/);
});

test('ipBlocks take CIDR blocks and single addresses; notIpBlocks excludes them', () => {
  const spec = allowFrom({ ipBlocks: ['10.244.2.0/24', '192.168.5.5'] });
  assert.equal(allows(spec, mtls(), plaintext(), plaintext({ sourceIp: '192.168.5.6' }), plaintext({ sourceIp: '10.244.3.1' })), [true, true, false, false]);
  assert.equal(allows(allowFrom({ notIpBlocks: ['10.244.0.0/16'] }), mtls(), plaintext()), [false, true]);
});

test('fields of one source must all match; any source of a rule may match', () => {
  const spec = { rules: [{ from: [{ source: { namespaces: ['front'], ipBlocks: ['10.244.2.0/24'] } }, { source: { namespaces: ['ops'] } }] }] };
  assert.equal(allows(spec, mtls('front'), mtls('front', 'web', { sourceIp: '10.1.1.1' }), mtls('ops', 'web', { sourceIp: '10.1.1.1' })), [true, false, true]);
});

test('ports and notPorts match the destination port', () => {
  assert.equal(allows({ rules: [{ to: [{ operation: { ports: ['8080', '9090'] } }] }] }, mtls(), mtls('front', 'web', { destinationPort: 9090 }), mtls('front', 'web', { destinationPort: 80 })), [true, true, false]);
  assert.equal(allows({ rules: [{ to: [{ operation: { notPorts: ['8080'] } }] }] }, mtls(), mtls('front', 'web', { destinationPort: 80 })), [false, true]);
});

test('from, to and when must all match for a rule to match', () => {
  const spec = { rules: [{ from: [{ source: { namespaces: ['front'] } }], to: [{ operation: { ports: ['8080'] } }], when: [{ key: 'source.ip', values: ['10.244.2.0/24'] }] }] };
  const c = (extra: Partial<ConnectionAttributes>) => mtls('front', 'web', extra);
  assert.equal(allows(spec, c({}), c({ destinationPort: 80 }), c({ sourceIp: '10.9.9.9' }), mtls('back')), [true, false, false, false]);
});

test('when source.ip and destination.ip take blocks, in values and notValues', () => {
  assert.equal(allows({ rules: [{ when: [{ key: 'source.ip', values: ['10.244.0.0/16'], notValues: ['10.244.9.0/24'] }] }] }, mtls(), mtls('front', 'web', { sourceIp: '10.244.9.1' }), plaintext()), [true, false, false]);
  assert.equal(allows({ rules: [{ when: [{ key: 'destination.ip', values: ['10.244.1.10'] }] }] }, mtls(), mtls('front', 'web', { destinationIp: '10.244.1.11' })), [true, false]);
});

test('when source.namespace and source.principal use string matching', () => {
  assert.equal(allows({ rules: [{ when: [{ key: 'source.namespace', notValues: ['back'] }] }] }, mtls('front'), mtls('back')), [true, false]);
  assert.equal(allows({ rules: [{ when: [{ key: 'source.principal', values: ['*/sa/web'] }] }] }, mtls('front', 'web'), mtls('front', 'api'), plaintext()), [true, false, false]);
});

test('when destination.port matches the port; every condition of a rule must hold', () => {
  const spec = { rules: [{ when: [{ key: 'destination.port', values: ['8080'] }, { key: 'source.namespace', values: ['front'] }] }] };
  assert.equal(allows(spec, mtls('front'), mtls('front', 'web', { destinationPort: 80 }), mtls('back')), [true, false, false]);
});

test('an IPv4 address reads as an integer, or -1 when it is not one; a block ignores host bits', () => {
  assert.equal([ipv4('10.244.1.10'), ipv4('255.255.255.255'), ipv4('10.244.1'), ipv4('10.256.0.1'), ipv4('1.2.3.4.5'), ipv4('::1'), ipv4('')], [183763210, 4294967295, -1, -1, -1, -1, -1]);
  assert.equal(ipRange('10.244.3.7/16'), { first: ipv4('10.244.0.0'), last: ipv4('10.244.255.255') });
  assert.equal(ipRange('0.0.0.0/0'), { first: 0, last: 4294967295 });
  assert.equal([ipRange('10.0.0.0/33'), ipRange('10.0.0.0/x'), ipRange('fe80::/10')], [undefined, undefined, undefined]);
});

test.run();
