import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { authenticator, bearer, issuer, makeKey, requestAuthentication, sign, toService } from './helpers.js';
import type { RequestAuthenticator } from '../../../../shared/policy/jwt/index.js';

const jwksUri = 'https://issuer.example.com/jwks.json';
const first = await makeKey('RS256', 'first');
const second = await makeKey('RS256', 'second');

/** A JWKS server the test drives: each fetch answers with the next queued answer, or waits for one. */
class FakeIssuer {
  calls: { uri: string; signal: AbortSignal }[] = [];
  private answers: (() => Promise<string>)[] = [];
  private waiting: ((answer: () => Promise<string>) => void)[] = [];
  private watchers: { n: number; resolve: () => void }[] = [];

  readonly fetchJwks = (uri: string, signal: AbortSignal): Promise<string> => {
    this.calls.push({ uri, signal });
    for (const w of this.watchers.filter((w) => this.calls.length >= w.n)) w.resolve();
    const next = this.answers.shift();
    if (next) return next();
    return new Promise<string>((resolve, reject) => this.waiting.push((a) => a().then(resolve, reject)));
  };

  answer(a: () => Promise<string>): void {
    const w = this.waiting.shift();
    if (w) w(a);
    else this.answers.push(a);
  }
  serve(text: string): void {
    this.answer(() => Promise.resolve(text));
  }
  fail(message = 'connection refused'): void {
    this.answer(() => Promise.reject(new Error(message)));
  }
  /**
   * Resolves once the n-th fetch has started. The refresh timers are unref'd (they must not hold a
   * waypoint open), so the wait holds the event loop open itself.
   */
  call(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    const hold = setInterval(() => {}, 1000);
    return new Promise<void>((resolve) => this.watchers.push({ n, resolve })).finally(() => clearInterval(hold));
  }
}

function remote(server: FakeIssuer, rule: Record<string, unknown> = { jwksUri }, o: { refreshMs?: number; retryMs?: number } = {}): RequestAuthenticator {
  return authenticator([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, ...rule }] })], { fetchJwks: server.fetchJwks, ...o });
}

const check = (a: RequestAuthenticator, token: string) => a.authenticate(a.rulesFor('shop/web')!, { headers: bearer(token), url: '/' });

test('jwksUri is fetched once and the keys serve every request until the refresh', async () => {
  const server = new FakeIssuer();
  server.serve(first.jwks);
  const a = remote(server);
  const token = await sign(first);
  for (let i = 0; i < 5; i++) assert.is((await check(a, token)).kind, 'valid');
  assert.is(server.calls.length, 1);
  assert.is(server.calls[0]!.uri, jwksUri);
  a.close();
});

test('a request that arrives before the first fetch ends waits for it', async () => {
  const server = new FakeIssuer();
  const a = remote(server);
  const pending = check(a, await sign(first));
  server.serve(first.jwks);
  assert.is((await pending).kind, 'valid');
  a.close();
});

test('fail closed: while no fetch has succeeded, a token is refused with 401 (a request without one still passes)', async () => {
  const server = new FakeIssuer();
  server.fail();
  const a = remote(server, { jwksUri }, { retryMs: 60_000 });
  assert.equal(await check(a, await sign(first)), { kind: 'invalid', status: 401, reason: 'Jwks remote fetch is failed', rule: 'shop/jwt jwtRules[0]' });
  assert.is((await a.authenticate(a.rulesFor('shop/web')!, { headers: {}, url: '/' })).kind, 'none');
  a.close();
});

test('a fetch that outlives the rule timeout is aborted and the waiting request refused', async () => {
  const server = new FakeIssuer();
  const a = remote(server, { jwksUri, timeout: '50ms' });
  const r = await check(a, await sign(first));
  assert.is(r.kind, 'invalid');
  assert.ok(server.calls[0]!.signal.aborted);
  a.close();
});

test('keys are refreshed periodically: a rotated key verifies after the next fetch', async () => {
  const server = new FakeIssuer();
  server.serve(first.jwks);
  const a = remote(server, { jwksUri }, { refreshMs: 20 });
  assert.is((await check(a, await sign(first))).kind, 'valid');
  assert.is((await check(a, await sign(second))).kind, 'invalid', 'not yet published');
  server.serve(second.jwks);
  await server.call(2);
  await server.call(3); // the second answer has been applied once the third fetch starts
  assert.is((await check(a, await sign(second))).kind, 'valid');
  a.close();
});

test('a failed refresh keeps the last good keys (network failure or unparsable JWKS)', async () => {
  const server = new FakeIssuer();
  server.serve(first.jwks);
  const a = remote(server, { jwksUri }, { refreshMs: 10, retryMs: 15 });
  assert.is((await check(a, await sign(first))).kind, 'valid');
  server.fail();
  server.serve('not json');
  await server.call(3);
  assert.is((await check(a, await sign(first))).kind, 'valid', 'kept after a network failure');
  await server.call(4);
  assert.is((await check(a, await sign(first))).kind, 'valid', 'kept after an unparsable JWKS');
  a.close();
});

test('after a failed fetch the next try comes after retryMs, not refreshMs, and its keys then serve', async () => {
  const server = new FakeIssuer();
  server.fail();
  const a = remote(server, { jwksUri }, { refreshMs: 3_600_000, retryMs: 10 });
  assert.is((await check(a, await sign(first))).kind, 'invalid');
  server.serve(first.jwks);
  await server.call(2);
  assert.is((await check(a, await sign(first))).kind, 'valid', 'the request waits for the retry in flight');
  a.close();
});

test('with no keys yet, a failed first fetch is retried after about a second, not after retryMs', async () => {
  const server = new FakeIssuer();
  server.fail('the waypoint has no certificate yet');
  const a = remote(server, { jwksUri }, { refreshMs: 3_600_000, retryMs: 60_000 });
  assert.is((await check(a, await sign(first))).kind, 'invalid');
  server.serve(first.jwks);
  // The backoff's first step is 1 s; retryMs is a minute. A deadline far from both tells them apart
  // on any machine.
  let deadline: NodeJS.Timeout | undefined;
  const second = await Promise.race([server.call(2).then(() => true), new Promise<false>((r) => (deadline = setTimeout(() => r(false), 20_000)))]);
  clearTimeout(deadline);
  assert.ok(second, 'the second try came long before retryMs');
  assert.is((await check(a, await sign(first))).kind, 'valid');
  a.close();
});

test('without jwks or jwksUri the keys come from the issuer OpenID discovery document', async () => {
  const server = new FakeIssuer();
  server.serve(JSON.stringify({ issuer, jwks_uri: 'https://keys.example.com/certs' }));
  server.serve(first.jwks);
  const a = remote(server, {});
  assert.is((await check(a, await sign(first))).kind, 'valid');
  assert.equal(
    server.calls.map((c) => c.uri),
    [`${issuer}/.well-known/openid-configuration`, 'https://keys.example.com/certs'],
  );
  a.close();
});

test('policies sharing a jwksUri share one fetch, and keys survive an update that keeps the URI', async () => {
  const server = new FakeIssuer();
  server.serve(first.jwks);
  const policies = [
    requestAuthentication('a', { ...toService('web'), jwtRules: [{ issuer, jwksUri }] }),
    requestAuthentication('b', { ...toService('api'), jwtRules: [{ issuer, jwksUri }] }),
  ];
  const a = authenticator(policies, { fetchJwks: server.fetchJwks });
  assert.is((await check(a, await sign(first))).kind, 'valid');
  a.update(policies);
  assert.is((await a.authenticate(a.rulesFor('shop/api')!, { headers: bearer(await sign(first)), url: '/' })).kind, 'valid');
  assert.is(server.calls.length, 1);
  a.close();
});

test('close aborts a fetch in flight and stops the refresh', async () => {
  const server = new FakeIssuer();
  const a = remote(server);
  await server.call(1);
  a.close();
  assert.ok(server.calls[0]!.signal.aborted);
});

test.run();
