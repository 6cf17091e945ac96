// What apply says about a security policy before it is stored: which proxies enforce it, what they
// cannot enforce as written (warnings, kept in its status), and what cannot be honoured at all
// (problems, which refuse the batch). Node proxies enforce selector policies at L4; waypoints enforce
// policies attached with targetRefs at L7 (Istio's ambient split).

import { Authorizer, PeerAuthenticator } from '../../shared/policy/index.js';
import { hasTargetRefs, readAttachment } from '../../shared/policy/http/attachment.js';
import { isRecord } from '../../shared/policy/spec.js';
import { httpPolicyProblems } from '../../shared/policy/http/rules.js';
import { jwtRuleProblems } from '../../shared/policy/jwt/index.js';
import type { Resource } from '../../shared/resources/types.js';

export interface PolicyReview {
  status: { enforcedBy: string; warnings?: string[] };
  warnings: string[];
  problems: { field: string; message: string }[];
}

const atWaypoints = 'waypoints (L7)';

/** The review of an AuthorizationPolicy, PeerAuthentication or RequestAuthentication; undefined for other kinds. */
export function reviewPolicy(r: Resource, rootNamespace: string): PolicyReview | undefined {
  const ns = r.metadata.namespace!;
  const spec = r.spec ?? {};
  switch (r.kind) {
    case 'AuthorizationPolicy':
      if (hasTargetRefs(spec)) return l7(readAttachment(spec, ns, rootNamespace).problems.concat(httpPolicyProblems(spec, ns)));
      return l4(new Authorizer(), r);
    case 'RequestAuthentication': {
      if (hasTargetRefs(spec)) return l7(readAttachment(spec, ns, rootNamespace).problems.concat(jwtRuleProblems(spec), keySourceProblems(spec)));
      // ztunnel ignores RequestAuthentication; saying so beats a policy that silently does nothing.
      const w = ['node proxies do not read HTTP, so no JWT is checked for the workloads it selects: attach it to a waypoint with targetRefs (kind Service or Gateway)'];
      return { status: { enforcedBy: 'none', warnings: w }, warnings: w, problems: jwtRuleProblems(spec) };
    }
    case 'PeerAuthentication':
      return l4(new PeerAuthenticator(), r);
    default:
      return undefined;
  }
}

function l7(problems: { field: string; message: string }[]): PolicyReview {
  return { status: { enforcedBy: atWaypoints }, warnings: [], problems };
}

function l4(engine: Authorizer | PeerAuthenticator, r: Resource): PolicyReview {
  engine.update([{ kind: r.kind, name: r.metadata.name, namespace: r.metadata.namespace!, spec: r.spec ?? {} }]);
  const w = engine.warnings().map((x) => `${x.rule !== undefined ? `rule ${x.rule}: ` : ''}${x.message}`);
  return { status: { enforcedBy: 'node proxies (L4)', ...(w.length ? { warnings: w } : {}) }, warnings: w, problems: [] };
}

/**
 * Where a waypoint can get a rule's keys: inline, or over http:// from a Service in the mesh (the
 * waypoint fetches through the mesh, with mutual TLS to the pod). Nothing leaves the cluster, so an
 * outside jwksUri, and OpenID discovery at the issuer's URL, cannot be honoured.
 */
function keySourceProblems(spec: unknown): { field: string; message: string }[] {
  if (!isRecord(spec) || !Array.isArray(spec.jwtRules)) return [];
  const problems: { field: string; message: string }[] = [];
  spec.jwtRules.forEach((rule, i) => {
    if (!isRecord(rule) || rule.jwks !== undefined) return;
    const uri = rule.jwksUri;
    if (uri === undefined) {
      problems.push({ field: `spec.jwtRules[${i}]`, message: 'needs jwks or jwksUri: the waypoint does not fetch OpenID discovery documents from outside the mesh' });
      return;
    }
    if (typeof uri !== 'string') return;
    let url: URL | undefined;
    try {
      url = new URL(uri);
    } catch {
      return; // jwtRuleProblems names it
    }
    const inCluster = /^[a-z0-9-]+\.[a-z0-9-]+(\.svc(\.cluster\.local)?)?$/.test(url.hostname) || /^\d+\.\d+\.\d+\.\d+$/.test(url.hostname);
    if (url.protocol !== 'http:' || !inCluster) problems.push({ field: `spec.jwtRules[${i}].jwksUri`, message: `must be http://NAME.NAMESPACE.svc.cluster.local[:PORT]/PATH, a Service in the mesh (the mesh encrypts the fetch), or use inline jwks; ${uri} is outside the cluster` });
  });
  return problems;
}
