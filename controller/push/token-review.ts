// An agent's bootstrap token, checked as istiod checks ztunnel's: a TokenReview by the Kubernetes API
// for the controller's audience, then the answer read for who it is. The token must belong to the
// agents' ServiceAccount and be bound to the node the agent claims (Kubernetes puts the node in a
// Node-bound token, and in a Pod-bound one since 1.30). Good answers are kept a short while, so a
// fleet reconnecting after a controller restart costs one review per agent, not one per request.

import { createHash } from 'node:crypto';
import type { KubeClient } from '../../shared/kube/client.js';
import { errorMessage } from '../../shared/errors.js';
import { agentTokenAudience } from '../../shared/protocol/config.js';
import type { TokenCheck } from './auth.js';
const nodeNameExtra = 'authentication.kubernetes.io/node-name';

export interface TokenReviewOptions {
  /** The agents' ServiceAccount: `ambit-system/ambit-agent`. */
  serviceAccount: { namespace: string; name: string };
  /** How long a good answer stands (a deleted ServiceAccount or Node is noticed within it). */
  cacheMs?: number;
  maxCached?: number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

export function tokenReviewCheck(kube: KubeClient, o: TokenReviewOptions): TokenCheck {
  const cacheMs = o.cacheMs ?? 30_000;
  const maxCached = o.maxCached ?? 10_000;
  const username = `system:serviceaccount:${o.serviceAccount.namespace}:${o.serviceAccount.name}`;
  // Keyed by a digest: tokens are credentials and need not sit in the heap twice.
  const good = new Map<string, { node: string; until: number }>();

  return async (node, token) => {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = good.get(key);
    if (hit && hit.until > Date.now()) return hit.node === node ? undefined : `the token is bound to node ${hit.node}, not ${node}`;
    let status: TokenReviewStatus;
    try {
      const review = await kube.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [agentTokenAudience] } },
        timeoutMs: 5000,
      });
      status = review.status ?? {};
    } catch (err) {
      return `the token could not be reviewed: ${errorMessage(err)}`;
    }
    if (!status.authenticated) return `the Kubernetes API did not authenticate the token: ${status.error ?? 'no reason given'}`;
    if (!status.audiences?.includes(agentTokenAudience)) return `the token is not for the audience ${agentTokenAudience}`;
    if (status.user?.username !== username) return `the token is ${status.user?.username ?? 'nobody'}'s, not the agents' ServiceAccount ${username}'s`;
    const bound = status.user.extra?.[nodeNameExtra]?.[0];
    if (!bound) return 'the token is bound to no node (request one bound to the node or to the agent pod)';
    if (good.size >= maxCached) good.delete(good.keys().next().value!);
    good.set(key, { node: bound, until: Date.now() + cacheMs });
    return bound === node ? undefined : `the token is bound to node ${bound}, not ${node}`;
  };
}
