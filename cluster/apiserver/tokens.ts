// ServiceAccount tokens as a Kubernetes API server issues and checks bound ones: ES256 JWTs signed
// by a key the local cluster keeps in its state directory, with Kubernetes' claims (iss, sub
// system:serviceaccount:NS:NAME, aud, exp, iat, nbf, jti, kubernetes.io {namespace,
// serviceaccount, pod|secret|node}), valid while the ServiceAccount (and the object the token is
// bound to) still exists with the uid it names. As Kubernetes 1.32 does, a Pod-bound token also names
// the pod's node, and a token may be bound to a Node itself (the node-name extra a node agent is
// known by). The REST side (TokenRequest, TokenReview) is token-api.ts's.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { writeFileAtomic } from '../../controller/store/store.js';
import type { Resource } from '../../shared/resources/types.js';

/** Who a request is: what TokenReview answers and what admission webhooks are told. */
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** kubeadm's issuer and API audience: what in-cluster clients (and Istio) expect of a local cluster's tokens. */
export const defaultIssuer = 'https://kubernetes.default.svc.cluster.local';

/** The kinds a token may be bound to, as Kubernetes' TokenRequest allows, of those the local cluster stores. */
export const bindableKinds = ['Pod', 'Secret', 'Node'] as const;
export type BindableKind = (typeof bindableKinds)[number];

interface KubernetesClaims {
  namespace: string;
  serviceaccount: { name: string; uid: string };
  pod?: { name: string; uid: string };
  secret?: { name: string; uid: string };
  node?: { name: string; uid: string };
}

export type Authentication = { ok: true; user: UserInfo; audiences: string[] } | { ok: false; error: string };

/** go-jose's default leeway, which Kubernetes' validator uses for exp, nbf and iat. */
const leewaySeconds = 60;

export interface TokenOptions {
  /** The PEM file of the signing key; made (P-256, readable by root only) when missing. */
  keyFile: string;
  issuer?: string;
  /** The API server's audiences (--api-audiences): what a bearer token must be for; the issuer by default. */
  audiences?: string[];
}

export class ServiceAccountTokens {
  readonly issuer: string;
  readonly apiAudiences: string[];
  private readonly key: KeyObject;
  private readonly publicKey: KeyObject;
  /** The key id, as Kubernetes derives it: a digest of the public key, so verifiers pick the right one. */
  private readonly kid: string;

  constructor(o: TokenOptions) {
    this.issuer = o.issuer ?? defaultIssuer;
    this.apiAudiences = o.audiences ?? [this.issuer];
    if (!existsSync(o.keyFile)) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileAtomic(o.keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    }
    this.key = createPrivateKey(readFileSync(o.keyFile));
    this.publicKey = createPublicKey(this.key);
    this.kid = createHash('sha256').update(this.publicKey.export({ type: 'spki', format: 'der' })).digest('base64url');
  }

  /** A token for `sa`, for `audiences` (the API's when empty), valid `seconds` from now, bound to `bound` if given. */
  async issue(sa: Resource, audiences: string[], seconds: number, bound?: { kind: BindableKind; object: Resource; node?: Resource }, now = Date.now()): Promise<{ token: string; expires: Date }> {
    const iat = Math.floor(now / 1000);
    const claims: KubernetesClaims = { namespace: sa.metadata.namespace!, serviceaccount: { name: sa.metadata.name, uid: sa.metadata.uid! } };
    const ref = (o: Resource) => ({ name: o.metadata.name, uid: o.metadata.uid! });
    if (bound?.kind === 'Pod') claims.pod = ref(bound.object);
    if (bound?.kind === 'Secret') claims.secret = ref(bound.object);
    // A Node-bound token names the node; a Pod-bound one names the node the pod was scheduled to.
    const node = bound?.kind === 'Node' ? bound.object : bound?.node;
    if (node) claims.node = ref(node);
    const token = await new SignJWT({ 'kubernetes.io': claims })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid })
      .setIssuer(this.issuer)
      .setSubject(`system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}`)
      .setAudience(audiences.length ? audiences : this.apiAudiences)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + seconds)
      .setJti(randomUUID())
      .sign(this.key);
    return { token, expires: new Date((iat + seconds) * 1000) };
  }

  /**
   * Who `token` is, for `audiences` (the API's when empty), as Kubernetes' service account
   * authenticator decides it: signed by our key, of our issuer, unexpired, for one of the
   * audiences, and its ServiceAccount (and bound object) still there with the same uid.
   */
  async authenticate(token: string, audiences: string[], lookup: (kind: string, namespace: string, name: string) => Resource | undefined): Promise<Authentication> {
    const wanted = audiences.length ? audiences : this.apiAudiences;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, { issuer: this.issuer, algorithms: ['ES256'], clockTolerance: leewaySeconds }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return fail('service account token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') return fail('service account token is not valid yet');
      // Not a JWT, another issuer's, or a signature not ours: no authenticator claims it.
      return { ok: false, error: 'invalid bearer token' };
    }
    const tokenAudiences = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? (payload.aud as string[]) : [];
    const matched = wanted.filter((a) => tokenAudiences.includes(a));
    if (!matched.length) return fail(`token audiences ${goList(tokenAudiences)} is invalid for the target audiences ${goList(wanted)}`);
    const k = payload['kubernetes.io'] as KubernetesClaims | undefined;
    if (!k?.namespace || !k.serviceaccount?.name || !k.serviceaccount.uid) return fail('service account token claims are incomplete');
    const sa = lookup('ServiceAccount', k.namespace, k.serviceaccount.name);
    if (!sa) return fail(`serviceaccounts "${k.serviceaccount.name}" not found`);
    if (sa.metadata.uid !== k.serviceaccount.uid) return fail(`service account UID (${sa.metadata.uid}) does not match claim (${k.serviceaccount.uid})`);
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${String(payload.jti)}`] };
    // A Pod-bound token is checked against its pod; its node claim is information, as in Kubernetes.
    const checked = [['Pod', k.pod], ['Secret', k.secret], ['Node', k.pod ? undefined : k.node]] as const;
    for (const [kind, claim] of checked) {
      if (!claim) continue;
      const plural = `${kind.toLowerCase()}s`;
      const found = lookup(kind, kind === 'Node' ? '' : k.namespace, claim.name);
      if (!found) return fail(`${plural} "${claim.name}" not found`);
      if (found.metadata.uid !== claim.uid) return fail(`${kind} UID (${found.metadata.uid}) does not match claim (${claim.uid})`);
      if (kind === 'Pod') {
        extra['authentication.kubernetes.io/pod-name'] = [claim.name];
        extra['authentication.kubernetes.io/pod-uid'] = [claim.uid];
      }
    }
    if (k.node) {
      extra['authentication.kubernetes.io/node-name'] = [k.node.name];
      extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
    }
    return {
      ok: true,
      user: { username: `system:serviceaccount:${k.namespace}:${k.serviceaccount.name}`, uid: k.serviceaccount.uid, groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'], extra },
      audiences: matched,
    };
  }
}

/** The union authenticator's wording: the bearer token's failure, then the validator's reason. */
const fail = (reason: string): Authentication => ({ ok: false, error: `[invalid bearer token, ${reason}]` });

/** A string list as Go's %q prints a []string: ["a" "b"]. */
const goList = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(' ')}]`;
