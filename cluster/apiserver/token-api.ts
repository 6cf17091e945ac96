// The REST side of ServiceAccount tokens: the TokenRequest subresource (POST
// serviceaccounts/NAME/token, what `kubectl create token` calls) and authentication.k8s.io/v1
// TokenReview (POST tokenreviews: who is this token?), both answered as Kubernetes answers them and
// stored nowhere. Signing and checking tokens is tokens.ts's.

import type { IncomingMessage } from 'node:http';
import type { Resource } from '../../shared/resources/types.js';
import { badRequest, conflict, invalid, notFound } from './errors.js';
import { mediaType, parseObjectBody, readBody } from './http.js';
import { decodeTokenRequest } from './protobuf.js';
import { type Authentication, type BindableKind, bindableKinds, type ServiceAccountTokens } from './tokens.js';

const group = 'authentication.k8s.io';
const apiVersion = `${group}/v1`;
/** Kubernetes' default and bounds for a requested token's life. */
const defaultExpirationSeconds = 3600;
const minExpirationSeconds = 600;
const maxExpirationSeconds = 2 ** 32;

type Lookup = (kind: string, namespace: string, name: string) => Resource | undefined;

interface TokenRequestSpec {
  audiences?: unknown;
  expirationSeconds?: unknown;
  boundObjectRef?: { kind?: string; apiVersion?: string; name?: string; uid?: string } | null;
}

/** The body as a `kind` of authentication.k8s.io/v1 (the apiVersion and kind may be left out), with its spec. */
function bodyOf(kind: string, raw: unknown): { spec: Record<string, unknown> } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest(`the body must be a ${kind} object`);
  const b = raw as { apiVersion?: string; kind?: string; spec?: unknown };
  if ((b.apiVersion !== undefined && b.apiVersion !== apiVersion) || (b.kind !== undefined && b.kind !== kind)) {
    throw badRequest(`the object is ${b.apiVersion}/${b.kind}, but the path is for ${apiVersion}/${kind}`);
  }
  const spec = b.spec ?? {};
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw badRequest(`spec of the ${kind} must be an object`);
  return { spec: spec as Record<string, unknown> };
}

function audiencesOf(kind: string, name: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) throw invalid(kind, group, name, [{ reason: 'FieldValueInvalid', field: 'spec.audiences', message: 'must be a list of strings' }]);
  return v as string[];
}

/** POST serviceaccounts/NAME/token: a bound token for the ServiceAccount, 201 with the TokenRequest and its status. */
export async function requestToken(req: IncomingMessage, namespace: string, name: string, tokens: ServiceAccountTokens, lookup: Lookup): Promise<unknown> {
  const body = await readBody(req);
  // kubectl's typed client sends this one in protobuf, whatever else it sends.
  const raw = mediaType(req.headers['content-type']) === 'application/vnd.kubernetes.protobuf' ? decodeTokenRequest(body) : parseObjectBody(req.headers['content-type'], body);
  const spec = bodyOf('TokenRequest', raw).spec as TokenRequestSpec;
  const sa = lookup('ServiceAccount', namespace, name);
  if (!sa) throw notFound({ plural: 'serviceaccounts', group: '' }, name);
  const audiences = audiencesOf('TokenRequest', name, spec.audiences);
  const seconds = spec.expirationSeconds ?? defaultExpirationSeconds;
  const tooShort = typeof seconds === 'number' && seconds < minExpirationSeconds;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || tooShort || seconds > maxExpirationSeconds) {
    const why = tooShort ? 'may not specify a duration less than 10 minutes' : typeof seconds === 'number' && Number.isInteger(seconds) ? 'may not specify a duration larger than 2^32 seconds' : 'must be an integer number of seconds';
    throw invalid('TokenRequest', group, name, [{ reason: 'FieldValueInvalid', field: 'spec.expirationSeconds', message: `Invalid value: ${JSON.stringify(seconds)}: ${why}` }]);
  }
  const ref = spec.boundObjectRef ?? undefined;
  let bound: { kind: BindableKind; object: Resource; node?: Resource } | undefined;
  if (ref) {
    if (!(bindableKinds as readonly string[]).includes(ref.kind ?? '') || (ref.apiVersion ?? 'v1') !== 'v1') {
      throw badRequest(`cannot bind token to object of type ${ref.apiVersion ?? ''}, Kind=${ref.kind ?? ''} (the local cluster binds tokens to v1 Pods, Secrets and Nodes)`);
    }
    if (!ref.name) throw invalid('TokenRequest', group, name, [{ reason: 'FieldValueRequired', field: 'spec.boundObjectRef.name', message: 'Required value' }]);
    const kind = ref.kind as BindableKind;
    const object = lookup(kind, kind === 'Node' ? '' : namespace, ref.name);
    if (!object) throw notFound({ plural: `${kind.toLowerCase()}s`, group: '' }, ref.name);
    if (kind === 'Pod' && ((object.spec as { serviceAccountName?: string } | undefined)?.serviceAccountName || 'default') !== name) {
      throw badRequest(`cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`);
    }
    if (ref.uid && ref.uid !== object.metadata.uid) {
      throw conflict({ plural: `${kind.toLowerCase()}s`, group: '' }, ref.name, `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
    }
    const nodeName = kind === 'Pod' ? (object.spec as { nodeName?: string } | undefined)?.nodeName : undefined;
    const node = nodeName ? lookup('Node', '', nodeName) : undefined;
    bound = { kind, object, ...(node ? { node } : {}) };
  }
  const issued = await tokens.issue(sa, audiences, seconds, bound);
  return {
    kind: 'TokenRequest',
    apiVersion,
    metadata: { name, namespace, creationTimestamp: null },
    spec: {
      audiences: audiences.length ? audiences : tokens.apiAudiences,
      expirationSeconds: seconds,
      boundObjectRef: bound ? { kind: bound.kind, apiVersion: 'v1', name: bound.object.metadata.name, uid: bound.object.metadata.uid } : null,
    },
    status: { token: issued.token, expirationTimestamp: issued.expires.toISOString().replace(/\.\d{3}Z$/, 'Z') },
  };
}

/** POST tokenreviews: who the token in the spec is, for the audiences in the spec (the API's when none), 201. */
export async function reviewToken(req: IncomingMessage, authenticate: (token: string, audiences: string[]) => Promise<Authentication>): Promise<unknown> {
  const { spec } = bodyOf('TokenReview', parseObjectBody(req.headers['content-type'], await readBody(req)));
  if (typeof spec.token !== 'string' || !spec.token) throw badRequest('token is required for TokenReview in authentication');
  const audiences = audiencesOf('TokenReview', '', spec.audiences);
  const result = await authenticate(spec.token, audiences);
  // authenticated is omitted when false, as Go's omitempty writes it.
  const status = result.ok ? { authenticated: true, user: result.user, audiences: result.audiences } : { user: {}, error: result.error };
  return { kind: 'TokenReview', apiVersion, metadata: { creationTimestamp: null }, spec: { token: spec.token, ...(audiences.length ? { audiences } : {}) }, status };
}
