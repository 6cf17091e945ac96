// What apply says about a security policy before it is stored: which proxies enforce it, what they
// cannot enforce as written (warnings, kept in its status), and what cannot be honoured at all
// (problems, which refuse the batch). Node proxies enforce selector policies at L4; waypoints enforce
// policies attached with targetRefs at L7 (Istio's ambient split).

import { Authorizer, PeerAuthenticator } from '../../shared/policy/index.js';
import { hasTargetRefs, readAttachment } from '../../shared/policy/http/attachment.js';
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
      if (hasTargetRefs(spec)) return l7(readAttachment(spec, ns, rootNamespace).problems.concat(jwtRuleProblems(spec)));
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
