import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HttpAuthorizer } from '../../../../shared/policy/http/authorization.js';
import type { HttpRequestAttributes, RequestAuth } from '../../../../shared/policy/http/types.js';
import type { PolicyEntry } from '../../../../shared/protocol/config.js';
import { authz } from '../helpers.js';

const waypoint = 'shop/waypoint';
const cart = 'shop/cart';
const toCart = { targetRefs: [{ kind: 'Service', group: '', name: 'cart' }] };

/** An ALLOW (or other action) policy attached to Service shop/cart. */
const onCart = (name: string, spec: Record<string, unknown>, namespace = 'shop'): PolicyEntry => authz(name, { ...toCart, ...spec }, namespace);

function authorizer(...policies: PolicyEntry[]): HttpAuthorizer {
  const a = new HttpAuthorizer(waypoint, 'istio-system');
  a.update(policies);
  return a;
}

/** GET /items from front/web over mTLS, to 10.96.0.10:8080. */
function request(extra: Partial<HttpRequestAttributes> = {}): HttpRequestAttributes {
  return {
    method: 'GET',
    path: '/items',
    host: 'cart.shop.svc.cluster.local',
    headers: {},
    sourceIp: '10.244.2.7',
    sourcePrincipal: 'cluster.local/ns/front/sa/web',
    sourceNamespace: 'front',
    destinationIp: '10.96.0.10',
    destinationPort: 8080,
    ...extra,
  };
}

function jwt(extra: Partial<RequestAuth> = {}): RequestAuth {
  return { principal: 'https://idp.example/alice', issuer: 'https://idp.example', subject: 'alice', audiences: ['shop'], claims: { groups: ['admin', 'dev'], level: 3, org: { team: 'pay' } }, ...extra };
}

const allowTo = (operation: Record<string, unknown>) => ({ rules: [{ to: [{ operation }] }] });
const allowFrom = (source: Record<string, unknown>) => ({ rules: [{ from: [{ source }] }] });
const allowWhen = (key: string, values: string[], not = false) => ({ rules: [{ when: [not ? { key, notValues: values } : { key, values }] }] });

function allowed(p: Record<string, unknown>, r: HttpRequestAttributes): boolean {
  return authorizer(onCart('p', p)).authorize(cart, r).allowed;
}

test('without an attached policy every request is allowed', () => {
  const d = authorizer().authorize(cart, request());
  assert.equal([d.allowed, d.reason], [true, 'no policy applies']);
});

test('a matching DENY policy wins over a matching ALLOW policy, and names its rule', () => {
  const a = authorizer(onCart('allow-all', { rules: [{}] }), onCart('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/x'] } }] }, { to: [{ operation: { paths: ['/admin/*'] } }] }] }));
  const d = a.authorize(cart, request({ path: '/admin/users' }));
  assert.equal({ ...d }, { allowed: false, reason: 'DENY policy shop/deny-admin rule 1', policy: 'shop/deny-admin', rule: 1, action: 'DENY' });
  assert.is(a.authorize(cart, request()).reason, 'ALLOW policy shop/allow-all rule 0');
});

test('DENY policies alone allow what they do not match', () => {
  const a = authorizer(onCart('deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }));
  assert.equal([a.authorize(cart, request()).allowed, a.authorize(cart, request()).reason], [true, 'no ALLOW policy applies']);
  assert.not.ok(a.authorize(cart, request({ method: 'POST' })).allowed);
});

test('once an ALLOW policy applies, a request it does not match is denied', () => {
  const d = authorizer(onCart('allow-get', allowTo({ methods: ['GET'] }))).authorize(cart, request({ method: 'DELETE' }));
  assert.equal([d.allowed, d.reason], [false, 'no ALLOW policy matched']);
});

test('an ALLOW policy without rules allows nothing; rules: [{}] allows everything', () => {
  assert.not.ok(authorizer(onCart('allow-nothing', {})).authorize(cart, request()).allowed);
  assert.ok(authorizer(onCart('allow-nothing', {}), onCart('allow-all', { rules: [{}] })).authorize(cart, request()).allowed);
});

test('AUDIT policies are recorded in the decision and never change it', () => {
  const a = authorizer(onCart('audit-get', { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }), onCart('allow-post', allowTo({ methods: ['POST'] })));
  const d = a.authorize(cart, request());
  assert.equal([d.allowed, d.reason, d.audit], [false, 'no ALLOW policy matched', ['shop/audit-get']]);
  const alone = authorizer(onCart('audit-get', { action: 'AUDIT', rules: [{}] })).authorize(cart, request());
  assert.equal([alone.allowed, alone.audit], [true, ['shop/audit-get']]);
  assert.is(a.authorize(cart, request({ method: 'POST' })).audit, undefined);
});

test('methods are matched case-sensitively, notMethods excludes', () => {
  assert.ok(allowed(allowTo({ methods: ['GET', 'HEAD'] }), request({ method: 'HEAD' })));
  assert.not.ok(allowed(allowTo({ methods: ['get'] }), request()));
  assert.not.ok(allowed(allowTo({ notMethods: ['GET'] }), request()));
  assert.ok(allowed(allowTo({ notMethods: ['GET'] }), request({ method: 'PUT' })));
});

test('paths match the normalized path by exact, prefix, suffix and template; notPaths excludes', () => {
  assert.ok(allowed(allowTo({ paths: ['/items'] }), request()));
  assert.ok(allowed(allowTo({ paths: ['/api/*'] }), request({ path: '/api/v1' })));
  assert.ok(allowed(allowTo({ paths: ['*.png'] }), request({ path: '/img/a.png' })));
  assert.ok(allowed(allowTo({ paths: ['/users/{*}/orders'] }), request({ path: '/users/7/orders' })));
  assert.not.ok(allowed(allowTo({ paths: ['/users/{*}/orders'] }), request({ path: '/users/7/x/orders' })));
  assert.not.ok(allowed(allowTo({ notPaths: ['/admin/*'] }), request({ path: '/admin/x' })));
  assert.ok(allowed(allowTo({ notPaths: ['/admin/*'] }), request()));
});

test('hosts match the Host as sent, case-insensitively, port included', () => {
  assert.ok(allowed(allowTo({ hosts: ['Cart.Shop.svc.cluster.local'] }), request()));
  assert.not.ok(allowed(allowTo({ hosts: ['cart.shop.svc.cluster.local'] }), request({ host: 'cart.shop.svc.cluster.local:8080' })));
  assert.ok(allowed(allowTo({ hosts: ['cart.shop.svc.cluster.local:*'] }), request({ host: 'CART.shop.svc.cluster.local:8080' })));
  assert.not.ok(allowed(allowTo({ notHosts: ['*.cluster.local'] }), request()));
});

test('ports match the destination port; notPorts excludes', () => {
  assert.ok(allowed(allowTo({ ports: ['8080'] }), request()));
  assert.not.ok(allowed(allowTo({ ports: ['9090'] }), request()));
  assert.not.ok(allowed(allowTo({ notPorts: ['8080'] }), request()));
});

test('principals and namespaces match the source identity; a plaintext request has neither', () => {
  assert.ok(allowed(allowFrom({ principals: ['cluster.local/ns/front/sa/web'] }), request()));
  assert.ok(allowed(allowFrom({ principals: ['*/sa/web'] }), request()));
  assert.not.ok(allowed(allowFrom({ principals: ['*'] }), request({ sourcePrincipal: '', sourceNamespace: '' })));
  assert.ok(allowed(allowFrom({ namespaces: ['fr*'] }), request()));
  assert.not.ok(allowed(allowFrom({ notNamespaces: ['front'] }), request()));
  assert.ok(allowed(allowFrom({ notPrincipals: ['*'] }), request({ sourcePrincipal: '', sourceNamespace: '' })));
});

test('serviceAccounts and trustDomains read the source principal', () => {
  assert.ok(allowed(allowFrom({ serviceAccounts: ['front/web'] }), request()));
  assert.not.ok(allowed(allowFrom({ serviceAccounts: ['web'] }), request()), 'a bare name is in the policy namespace, shop');
  assert.ok(allowed(allowFrom({ trustDomains: ['cluster.local'] }), request()));
  assert.not.ok(allowed(allowFrom({ notTrustDomains: ['cluster.*'] }), request()));
});

test('ipBlocks and remoteIpBlocks match the source address', () => {
  assert.ok(allowed(allowFrom({ ipBlocks: ['10.244.0.0/16'] }), request()));
  assert.not.ok(allowed(allowFrom({ ipBlocks: ['10.245.0.0/16'] }), request()));
  assert.ok(allowed(allowFrom({ remoteIpBlocks: ['10.244.2.7'] }), request()));
  assert.not.ok(allowed(allowFrom({ notRemoteIpBlocks: ['10.244.2.0/24'] }), request()));
});

test('requestPrincipals match iss/sub as istiod splits them; no JWT matches none', () => {
  const withJwt = request({ auth: jwt() });
  assert.ok(allowed(allowFrom({ requestPrincipals: ['https://idp.example/alice'] }), withJwt));
  assert.ok(allowed(allowFrom({ requestPrincipals: ['https://idp.example/*'] }), withJwt));
  assert.ok(allowed(allowFrom({ requestPrincipals: ['*/alice'] }), withJwt));
  assert.ok(allowed(allowFrom({ requestPrincipals: ['*'] }), withJwt));
  assert.not.ok(allowed(allowFrom({ requestPrincipals: ['*'] }), request()));
  assert.not.ok(allowed(allowFrom({ requestPrincipals: ['https://other/*'] }), withJwt));
});

test('a DENY on notRequestPrincipals ["*"] denies a request without a JWT only', () => {
  const a = authorizer(onCart('require-jwt', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] }));
  assert.not.ok(a.authorize(cart, request()).allowed);
  assert.ok(a.authorize(cart, request({ auth: jwt() })).allowed);
});

test('from holds when any source holds; within a source every field must', () => {
  const p = { rules: [{ from: [{ source: { namespaces: ['back'] } }, { source: { namespaces: ['front'], principals: ['*/sa/web'] } }] }] };
  assert.ok(allowed(p, request()));
  assert.not.ok(allowed(p, request({ sourcePrincipal: 'cluster.local/ns/front/sa/other' })));
});

test('a rule needs from, to and every when condition to hold', () => {
  const p = { rules: [{ from: [{ source: { namespaces: ['front'] } }], to: [{ operation: { methods: ['GET'] } }], when: [{ key: 'request.headers[x-user]', values: ['a'] }, { key: 'destination.port', values: ['8080'] }] }] };
  assert.ok(allowed(p, request({ headers: { 'x-user': 'a' } })));
  assert.not.ok(allowed(p, request({ headers: { 'x-user': 'b' } })));
  assert.not.ok(allowed(p, request({ headers: { 'x-user': 'a' }, method: 'POST' })));
});

test('request.headers conditions: name case-insensitive, repeated values joined with a comma, * is presence', () => {
  assert.ok(allowed(allowWhen('request.headers[X-User]', ['alice']), request({ headers: { 'x-user': 'alice' } })));
  assert.ok(allowed(allowWhen('request.headers[x-tag]', ['a,b']), request({ headers: { 'x-tag': ['a', 'b'] } })));
  assert.ok(allowed(allowWhen('request.headers[x-tag]', ['*']), request({ headers: { 'x-tag': '' } })));
  assert.not.ok(allowed(allowWhen('request.headers[x-tag]', ['*']), request()));
  assert.ok(allowed(allowWhen('request.headers[x-tag]', ['bad'], true), request()));
});

test('request.auth claims: nested names, a list matches by any element, non-strings never match', () => {
  const withJwt = request({ auth: jwt() });
  assert.ok(allowed(allowWhen('request.auth.claims[groups]', ['admin']), withJwt));
  assert.ok(allowed(allowWhen('request.auth.claims[org][team]', ['pay']), withJwt));
  assert.not.ok(allowed(allowWhen('request.auth.claims[level]', ['3']), withJwt));
  assert.not.ok(allowed(allowWhen('request.auth.claims[groups]', ['admin']), request()));
  assert.ok(allowed(allowWhen('request.auth.audiences', ['shop']), withJwt));
  assert.ok(allowed(allowWhen('request.auth.presenter', ['web-app']), request({ auth: jwt({ presenter: 'web-app' }) })));
  assert.ok(allowed(allowWhen('request.auth.principal', ['https://idp.example/alice']), withJwt));
});

test('source and destination conditions read the peer and the Service address', () => {
  assert.ok(allowed(allowWhen('source.ip', ['10.244.2.0/24']), request()));
  assert.ok(allowed(allowWhen('remote.ip', ['10.244.2.7']), request()));
  assert.ok(allowed(allowWhen('source.namespace', ['front']), request()));
  assert.ok(allowed(allowWhen('source.principal', ['*/ns/front/sa/web']), request()));
  assert.ok(allowed(allowWhen('destination.ip', ['10.96.0.0/12']), request()));
  assert.not.ok(allowed(allowWhen('destination.port', ['8080'], true), request()));
  assert.not.ok(allowed(allowWhen('connection.sni', ['*']), request()));
});

test('a policy on another Service or another waypoint does not apply', () => {
  const a = authorizer(
    authz('other-svc', { targetRefs: [{ kind: 'Service', group: '', name: 'orders' }] }),
    authz('other-wp', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'other' }] }),
    authz('other-ns', toCart, 'front'),
  );
  assert.is(a.authorize(cart, request()).reason, 'no policy applies');
});

test('a policy naming this waypoint applies to every Service behind it', () => {
  const a = authorizer(authz('wp', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }] }));
  assert.not.ok(a.authorize(cart, request()).allowed);
  assert.not.ok(a.authorize('shop/orders', request()).allowed);
});

test('a root-namespace policy naming the waypoint GatewayClass applies everywhere; elsewhere it does not', () => {
  const ref = { targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'ambit-waypoint' }] };
  assert.not.ok(authorizer(authz('mesh', ref, 'istio-system')).authorize(cart, request()).allowed);
  const a = authorizer(authz('mesh', ref, 'shop'));
  assert.ok(a.authorize(cart, request()).allowed);
  assert.ok(a.warnings().some((w) => w.policy === 'shop/mesh' && w.message.includes('root namespace')));
});

test('a selector policy is the node proxy’s and is ignored here', () => {
  assert.ok(authorizer(authz('sel', { selector: { matchLabels: { app: 'cart' } } })).authorize(cart, request()).allowed);
  assert.ok(authorizer(authz('all', {})).authorize(cart, request()).allowed);
});

test('an ALLOW rule with an invalid value never matches; the other rules still do', () => {
  const a = authorizer(onCart('p', { rules: [{ from: [{ source: { ipBlocks: ['not-an-ip'] } }] }, { to: [{ operation: { methods: ['POST'] } }] }] }));
  assert.not.ok(a.authorize(cart, request()).allowed);
  assert.ok(a.authorize(cart, request({ method: 'POST' })).allowed);
  assert.ok(a.warnings().some((w) => w.rule === 0 && w.message.includes('never matches')));
});

test('a DENY rule with an unknown condition is enforced without it: it denies more, never less', () => {
  const a = authorizer(onCart('deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'request.colour', values: ['red'] }] }] }));
  assert.not.ok(a.authorize(cart, request({ path: '/admin' })).allowed);
  assert.ok(a.authorize(cart, request()).allowed);
});

test('a CUSTOM policy is not supported: requests its rules match are denied', () => {
  const a = authorizer(onCart('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/secure/*'] } }] }] }));
  const d = a.authorize(cart, request({ path: '/secure/x' }));
  assert.equal([d.allowed, d.action, d.reason], [false, 'DENY', 'CUSTOM policy shop/ext rule 0 (not supported: denied)']);
  assert.ok(a.authorize(cart, request()).allowed);
});

test('decisions for a rule are shared objects, not built per request', () => {
  const a = authorizer(onCart('allow-get', allowTo({ methods: ['GET'] })));
  assert.is(a.authorize(cart, request()), a.authorize(cart, request({ path: '/other' })));
  assert.ok(Object.isFrozen(a.authorize(cart, request())));
});

test('update replaces every policy and forgets what applied to a Service', () => {
  const a = authorizer(onCart('allow-post', allowTo({ methods: ['POST'] })));
  assert.not.ok(a.authorize(cart, request()).allowed);
  a.update([]);
  assert.ok(a.authorize(cart, request()).allowed);
});

test('explain names each policy and rule considered, and the field that failed', () => {
  const a = authorizer(onCart('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }, { from: [{ source: { namespaces: ['back'] } }, { source: { namespaces: ['ops'] } }] }] }), onCart('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }));
  const { decision, lines } = a.explain(cart, request({ method: 'POST' }));
  assert.not.ok(decision.allowed);
  assert.equal(lines, [
    'DENY shop/deny-admin rule 0: to[0]: paths [/admin] did not match "/items"',
    'ALLOW shop/allow-get rule 0: to[0]: methods [GET] did not match "POST"',
    'ALLOW shop/allow-get rule 1: no from matched (from[0]: namespaces [back] did not match "front"; from[1]: namespaces [ops] did not match "front")',
    'denied: no ALLOW policy matched',
  ]);
  assert.ok(a.explain(cart, request()).lines.includes('ALLOW shop/allow-get rule 0: matched'));
});

test.run();
