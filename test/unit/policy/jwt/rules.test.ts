import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jwtRuleProblems } from '../../../../shared/policy/jwt/index.js';
import { authenticator, bearer, issuer, makeKey, requestAuthentication, sign, toService } from './helpers.js';

const key = await makeKey('ES256');
const fields = (spec: unknown) => jwtRuleProblems(spec).map((p) => p.field);

test('a complete rule has no problems', () => {
  assert.equal(jwtRuleProblems({ jwtRules: [{ issuer, jwks: key.jwks, audiences: ['web'], fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }], outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }], timeout: '2s' }] }), []);
});

test('a rule without issuer is refused', () => {
  assert.equal(fields({ jwtRules: [{ jwks: key.jwks }] }), ['spec.jwtRules[0].issuer']);
});

test('jwks that is not JSON, not a JWKS, symmetric or private is refused with what to do', () => {
  const msg = (jwks: string) => jwtRuleProblems({ jwtRules: [{ issuer, jwks }] })[0]?.message ?? '';
  assert.match(msg('{not json'), 'is not JSON');
  assert.match(msg('{"kid":"x"}'), '"keys" list');
  assert.match(msg('{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'), 'symmetric');
  assert.match(msg(JSON.stringify({ keys: [{ ...key.jwk, d: 'secret' }] })), 'private key');
  assert.match(msg('{"keys":[{"kty":"RSA","e":"AQAB"}]}'), 'lacks n');
});

test('jwks and jwksUri together are a problem (the inline keys would win)', () => {
  assert.equal(fields({ jwtRules: [{ issuer, jwks: key.jwks, jwksUri: 'https://issuer.example.com/jwks' }] }), ['spec.jwtRules[0].jwks']);
});

test('jwksUri must be an http or https URL', () => {
  assert.equal(fields({ jwtRules: [{ issuer, jwksUri: 'file:///etc/jwks.json' }] }), ['spec.jwtRules[0].jwksUri']);
  assert.equal(fields({ jwtRules: [{ issuer, jwksUri: 'not a url' }] }), ['spec.jwtRules[0].jwksUri']);
  assert.equal(fields({ jwtRules: [{ issuer, jwksUri: 'http://keycloak.auth:8080/certs' }] }), []);
});

test('bad header names, empty params, claims without a name and bad timeouts are each named by field', () => {
  assert.equal(
    fields({
      jwtRules: [{ issuer, jwks: key.jwks, fromHeaders: [{ name: 'bad header' }], fromParams: [''], outputClaimToHeaders: [{ header: 'x-a', claim: '' }], outputPayloadToHeader: 'a:b', timeout: 'soon' }],
    }),
    ['spec.jwtRules[0].fromHeaders[0].name', 'spec.jwtRules[0].fromParams[0]', 'spec.jwtRules[0].outputPayloadToHeader', 'spec.jwtRules[0].outputClaimToHeaders[0].claim', 'spec.jwtRules[0].timeout'],
  );
});

test('a policy with a selector is for node proxies: the waypoint ignores it', () => {
  const a = authenticator([requestAuthentication('sel', { selector: { matchLabels: { app: 'web' } }, jwtRules: [{ issuer, jwks: key.jwks }] })]);
  assert.is(a.rulesFor('shop/web'), undefined);
});

test('a policy on the waypoint Gateway applies to every Service behind it; one on a Service to that Service only', async () => {
  const a = authenticator([
    requestAuthentication('gw', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], jwtRules: [{ issuer, jwks: key.jwks }] }),
    requestAuthentication('api', { ...toService('api'), jwtRules: [{ issuer: 'https://other.example.com', jwks: key.jwks }] }),
  ]);
  assert.equal(a.rulesFor('shop/web')?.policies, ['shop/gw']);
  assert.equal(a.rulesFor('billing/anything')?.policies, ['shop/gw']);
  assert.equal(a.rulesFor('shop/api')?.policies, ['shop/api', 'shop/gw']);
  const other = authenticator([requestAuthentication('gw', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'other-waypoint' }], jwtRules: [{ issuer, jwks: key.jwks }] })]);
  assert.is(other.rulesFor('shop/web'), undefined, "another waypoint's policy");
});

test('a root-namespace policy on the waypoint GatewayClass applies at every waypoint', () => {
  const a = authenticator([requestAuthentication('mesh', { targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'istio-waypoint' }], jwtRules: [{ issuer, jwks: key.jwks }] }, 'istio-system')]);
  assert.equal(a.rulesFor('shop/web')?.policies, ['istio-system/mesh']);
});

test('rules of several policies on one Service merge: a token of either issuer is accepted', async () => {
  const other = await makeKey('RS256');
  const a = authenticator([
    requestAuthentication('one', { ...toService(), jwtRules: [{ issuer, jwks: key.jwks }] }),
    requestAuthentication('two', { ...toService(), jwtRules: [{ issuer: 'https://two.example.com', jwks: other.jwks }] }),
  ]);
  const rules = a.rulesFor('shop/web')!;
  const first = await a.authenticate(rules, { headers: bearer(await sign(key)), url: '/' });
  const second = await a.authenticate(rules, { headers: bearer(await sign(other, { iss: 'https://two.example.com' })), url: '/' });
  assert.is(first.kind === 'valid' && first.rule, 'shop/one jwtRules[0]');
  assert.is(second.kind === 'valid' && second.rule, 'shop/two jwtRules[0]');
});

test('a rule whose inline jwks is unusable still claims its issuer: its tokens are refused, not let through', async () => {
  const a = authenticator([requestAuthentication('bad', { ...toService(), jwtRules: [{ issuer, jwks: '{"keys":[]}' }] })]);
  const r = await a.authenticate(a.rulesFor('shop/web')!, { headers: bearer(await sign(key)), url: '/' });
  assert.equal(r, { kind: 'invalid', status: 401, reason: "Jwks doesn't have any valid public key", rule: 'shop/bad jwtRules[0]' });
});

test('explain names the policies, each rule with issuer, locations and keys, and what a result meant', async () => {
  const a = authenticator([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, jwks: key.jwks, audiences: ['web'] }] })]);
  const r = await a.authenticate(a.rulesFor('shop/web')!, { headers: bearer(await sign(key, { aud: 'other' })), url: '/' });
  const lines = a.explain('shop/web', r);
  assert.match(lines[0]!, 'shop/jwt applies to shop/web at waypoint shop/waypoint');
  assert.match(lines[1]!, `issuer ${issuer}, audiences web, tokens from header authorization after "Bearer ", query parameter access_token; inline jwks`);
  assert.match(lines[2]!, 'token refused with 403: Audiences in Jwt are not allowed (shop/jwt jwtRules[0])');
  assert.match(a.explain('shop/db')[0]!, 'no RequestAuthentication applies to shop/db');
});

test.run();
