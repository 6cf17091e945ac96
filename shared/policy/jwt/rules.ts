// Reading a RequestAuthentication's `jwtRules` (security.istio.io/v1, reference
// https://istio.io/latest/docs/reference/config/security/jwt/) into plain values, and the problems that
// make the controller refuse a rule at apply time. Where keys come from is jwks-source.ts's concern;
// where tokens are found is token.ts's.

import { isRecord } from '../spec.js';
import { jwksProblem } from './keys.js';

/** A header a token is read from: `prefix` is searched for in the value, the token follows it. */
export interface HeaderLocation {
  /** Lower-case, as Node gives header names. */
  name: string;
  prefix: string;
}

/** One `jwtRules[i]`, read. */
export interface JwtRuleSpec {
  issuer: string;
  audiences: string[];
  /** Inline JWKS text; when set, `jwksUri` is not used (istiod: inline keys win). */
  jwks?: string;
  jwksUri?: string;
  /** Where tokens are looked for; the defaults (`Authorization: Bearer`, `access_token`) already applied. */
  fromHeaders: HeaderLocation[];
  fromParams: string[];
  fromCookies: string[];
  forwardOriginalToken: boolean;
  /** Lower-case header name, or undefined. */
  outputPayloadToHeader?: string;
  outputClaimToHeaders: { header: string; claim: string }[];
  /** JWKS fetch timeout; Istio's default is 5 s. */
  timeoutMs: number;
}

export interface JwtRuleProblem {
  /** `spec.jwtRules[0].jwksUri` */
  field: string;
  message: string;
}

// JwtRule.fromHeaders/fromParams doc: "If no explicit location is specified the following default
// locations are tried in order: Authorization: Bearer <token>, access_token query parameter".
const defaultHeaders: readonly HeaderLocation[] = Object.freeze([Object.freeze({ name: 'authorization', prefix: 'Bearer ' })]);
const defaultParams: readonly string[] = Object.freeze(['access_token']);
const defaultTimeoutMs = 5000;
// RFC 9110 section 5.1: a field name is a token.
const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function strings(value: unknown, field: string, problems: JwtRuleProblem[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push({ field, message: 'must be a list of strings' });
    return [];
  }
  const out: string[] = [];
  value.forEach((v, i) => {
    if (typeof v !== 'string' || v === '') problems.push({ field: `${field}[${i}]`, message: 'must be a non-empty string' });
    else out.push(v);
  });
  return out;
}

/** `5s`, `1.5s` (protobuf Duration in JSON) or `500ms`; undefined when not a duration. */
function durationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

/**
 * One rule read from `value` (at `field`, e.g. `spec.jwtRules[0]`): the rule, or undefined when it
 * cannot be used at all (no issuer), and every problem found. A rule whose keys are unusable is still
 * returned: the waypoint then refuses its tokens (401) rather than letting them through unchecked.
 */
export function readJwtRule(value: unknown, field: string): { rule: JwtRuleSpec | undefined; problems: JwtRuleProblem[] } {
  const problems: JwtRuleProblem[] = [];
  if (!isRecord(value)) return { rule: undefined, problems: [{ field, message: 'must be an object' }] };
  const issuer = value.issuer;
  if (typeof issuer !== 'string' || issuer === '') problems.push({ field: `${field}.issuer`, message: 'is required: the token `iss` this rule accepts' });

  let jwks: string | undefined;
  if (value.jwks !== undefined && value.jwks !== null && value.jwks !== '') {
    if (typeof value.jwks !== 'string') problems.push({ field: `${field}.jwks`, message: 'must be the JWKS as a JSON string' });
    else {
      jwks = value.jwks;
      const p = jwksProblem(jwks);
      if (p) problems.push({ field: `${field}.jwks`, message: p });
    }
  }
  let jwksUri: string | undefined;
  if (value.jwksUri !== undefined && value.jwksUri !== null && value.jwksUri !== '') {
    if (typeof value.jwksUri !== 'string') problems.push({ field: `${field}.jwksUri`, message: 'must be a string' });
    else {
      jwksUri = value.jwksUri;
      // Istio's validation (security.ParseJwksURI) accepts only http and https.
      let url: URL | undefined;
      try {
        url = new URL(jwksUri);
      } catch {
        problems.push({ field: `${field}.jwksUri`, message: `${JSON.stringify(jwksUri)} is not a URL` });
      }
      if (url && url.protocol !== 'http:' && url.protocol !== 'https:') problems.push({ field: `${field}.jwksUri`, message: `scheme must be http or https, not ${url.protocol.slice(0, -1)}` });
    }
  }
  if (jwks !== undefined && jwksUri !== undefined) problems.push({ field: `${field}.jwks`, message: 'set jwks or jwksUri, not both: the inline jwks would be used and jwksUri ignored' });

  const fromHeaders: HeaderLocation[] = [];
  if (value.fromHeaders !== undefined && value.fromHeaders !== null) {
    if (!Array.isArray(value.fromHeaders)) problems.push({ field: `${field}.fromHeaders`, message: 'must be a list of { name, prefix }' });
    else
      value.fromHeaders.forEach((h, i) => {
        const f = `${field}.fromHeaders[${i}]`;
        if (!isRecord(h) || typeof h.name !== 'string' || !headerName.test(h.name)) problems.push({ field: `${f}.name`, message: 'must be an HTTP header name' });
        else if (h.prefix !== undefined && typeof h.prefix !== 'string') problems.push({ field: `${f}.prefix`, message: 'must be a string' });
        else fromHeaders.push({ name: h.name.toLowerCase(), prefix: (h.prefix as string | undefined) ?? '' });
      });
  }
  const fromParams = strings(value.fromParams, `${field}.fromParams`, problems);
  const fromCookies = strings(value.fromCookies, `${field}.fromCookies`, problems);
  const audiences = strings(value.audiences, `${field}.audiences`, problems);

  let outputPayloadToHeader: string | undefined;
  if (value.outputPayloadToHeader !== undefined && value.outputPayloadToHeader !== null && value.outputPayloadToHeader !== '') {
    if (typeof value.outputPayloadToHeader !== 'string' || !headerName.test(value.outputPayloadToHeader)) problems.push({ field: `${field}.outputPayloadToHeader`, message: 'must be an HTTP header name' });
    else outputPayloadToHeader = value.outputPayloadToHeader.toLowerCase();
  }
  const outputClaimToHeaders: { header: string; claim: string }[] = [];
  if (value.outputClaimToHeaders !== undefined && value.outputClaimToHeaders !== null) {
    if (!Array.isArray(value.outputClaimToHeaders)) problems.push({ field: `${field}.outputClaimToHeaders`, message: 'must be a list of { header, claim }' });
    else
      value.outputClaimToHeaders.forEach((c, i) => {
        const f = `${field}.outputClaimToHeaders[${i}]`;
        if (!isRecord(c) || typeof c.header !== 'string' || !headerName.test(c.header)) problems.push({ field: `${f}.header`, message: 'must be an HTTP header name' });
        else if (typeof c.claim !== 'string' || c.claim === '') problems.push({ field: `${f}.claim`, message: 'must name a claim (nested claims with `.`)' });
        else outputClaimToHeaders.push({ header: c.header.toLowerCase(), claim: c.claim });
      });
  }
  let timeoutMs = defaultTimeoutMs;
  if (value.timeout !== undefined && value.timeout !== null) {
    const ms = typeof value.timeout === 'string' ? durationMs(value.timeout) : undefined;
    if (ms === undefined || ms <= 0) problems.push({ field: `${field}.timeout`, message: 'must be a positive duration such as 5s' });
    else timeoutMs = ms;
  }
  if (value.forwardOriginalToken !== undefined && typeof value.forwardOriginalToken !== 'boolean') problems.push({ field: `${field}.forwardOriginalToken`, message: 'must be true or false' });

  if (typeof issuer !== 'string' || issuer === '') return { rule: undefined, problems };
  const explicit = fromHeaders.length + fromParams.length + fromCookies.length > 0;
  return {
    rule: {
      issuer,
      audiences,
      ...(jwks !== undefined ? { jwks } : {}),
      ...(jwksUri !== undefined ? { jwksUri } : {}),
      fromHeaders: explicit ? fromHeaders : [...defaultHeaders],
      fromParams: explicit ? fromParams : [...defaultParams],
      fromCookies,
      forwardOriginalToken: value.forwardOriginalToken === true,
      ...(outputPayloadToHeader !== undefined ? { outputPayloadToHeader } : {}),
      outputClaimToHeaders,
      timeoutMs,
    },
    problems,
  };
}

/** Every rule of a RequestAuthentication spec, read, with the problems of all. */
export function readJwtRules(spec: unknown): { rules: (JwtRuleSpec | undefined)[]; problems: JwtRuleProblem[] } {
  if (!isRecord(spec) || spec.jwtRules === undefined || spec.jwtRules === null) return { rules: [], problems: [] };
  if (!Array.isArray(spec.jwtRules)) return { rules: [], problems: [{ field: 'spec.jwtRules', message: 'must be a list of rules' }] };
  const rules: (JwtRuleSpec | undefined)[] = [];
  const problems: JwtRuleProblem[] = [];
  spec.jwtRules.forEach((r, i) => {
    const read = readJwtRule(r, `spec.jwtRules[${i}]`);
    rules.push(read.rule);
    problems.push(...read.problems);
  });
  return { rules, problems };
}

/** What makes the controller refuse a RequestAuthentication's `jwtRules` at apply time. */
export function jwtRuleProblems(spec: unknown): JwtRuleProblem[] {
  return readJwtRules(spec).problems;
}
