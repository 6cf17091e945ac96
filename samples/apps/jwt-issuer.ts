// A token issuer for the L7 security samples and tests, as Istio's samples/jwt-server and
// security/tools/jwt/samples/gen-jwt.py are for Istio's: at start it makes an ES256 and an RS256 key
// pair (never written anywhere), serves their public keys as a JWKS on `/jwks.json` (what a
// RequestAuthentication's jwksUri names), and signs tokens on request:
//   GET /token?sub=alice&aud=shop&exp=60&groups=admin,dev&alg=RS256&claims={"scope":"read"}
// `exp` is seconds from now (negative: already expired), `nbf` likewise. A real issuer would
// authenticate the caller; this one signs what it is asked, so it belongs only in a test namespace.

import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface IssuerOptions {
  port: number;
  /** The `iss` of every token. */
  issuer: string;
}

const algs = ['ES256', 'RS256'] as const;

export async function runJwtIssuer(o: IssuerOptions): Promise<void> {
  const keys = new Map<string, CryptoKey>();
  const jwks: JWK[] = [];
  for (const alg of algs) {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const kid = `${alg.toLowerCase()}-${Date.now().toString(36)}`;
    keys.set(alg, privateKey);
    jwks.push({ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' });
  }
  const document = JSON.stringify({ keys: jwks });
  let served = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') return void res.end('ok\n');
    if (url.pathname === '/jwks.json') {
      served++;
      res.writeHead(200, { 'content-type': 'application/json', 'x-jwks-served': String(served) });
      return void res.end(document);
    }
    if (url.pathname !== '/token') return void res.writeHead(404).end('GET /jwks.json or /token?sub=...\n');
    void sign(url.searchParams).then(
      (token) => res.writeHead(200, { 'content-type': 'text/plain' }).end(token),
      (err: Error) => res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  async function sign(q: URLSearchParams): Promise<string> {
    const alg = q.get('alg') ?? 'ES256';
    const key = keys.get(alg);
    if (!key) throw new Error(`alg must be one of ${algs.join(', ')}`);
    const claims = q.has('claims') ? (JSON.parse(q.get('claims')!) as Record<string, unknown>) : {};
    if (q.has('groups')) claims.groups = q.get('groups')!.split(',');
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT(claims).setProtectedHeader({ alg, kid: jwks.find((k) => k.alg === alg)!.kid!, typ: 'JWT' }).setIssuer(o.issuer).setIssuedAt(now).setExpirationTime(now + Number(q.get('exp') ?? 3600));
    if (q.has('sub')) jwt.setSubject(q.get('sub')!);
    if (q.has('aud')) jwt.setAudience(q.get('aud')!.split(','));
    if (q.has('nbf')) jwt.setNotBefore(now + Number(q.get('nbf')));
    return jwt.sign(key);
  }
  server.listen(o.port, () => process.stdout.write(`jwt issuer ${o.issuer} listening on ${o.port}: /jwks.json, /token\n`));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
