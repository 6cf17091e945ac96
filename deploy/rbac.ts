// The controller's permissions, least privilege, each rule from what its code calls (controller/,
// through shared/kube): a Role in ambit-system for its own Secrets, Lease and ConfigMap, a ClusterRole
// for the rest. The agent has none: it talks to the controller only, with a token of its
// ServiceAccount that the controller reviews (a TokenReview needs no permission of the token's owner).

import { pushedKinds } from '../controller/kube/cache.js';
import { caRootConfigMap } from '../shared/protocol/config.js';
import { kindInfo } from '../shared/resources/kinds.js';
import { webhookConfigurationName } from '../shared/resources/webhook-configurations.js';
import { caSecretName, pluggedSecretName } from '../controller/ca/secret.js';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

function groupAndPlural(kind: string): { group: string; plural: string } {
  const info = kindInfo(kind);
  if (!info) throw new Error(`no kind ${kind} in shared/resources/kinds.ts`);
  return { group: info.apiVersion.includes('/') ? info.apiVersion.split('/')[0]! : '', plural: info.names[1]! };
}

/** One rule per API group, its resources sorted, as `kubectl describe clusterrole` groups them. */
function rulesFor(kinds: readonly string[], verbs: string[], suffix = ''): PolicyRule[] {
  const byGroup = new Map<string, string[]>();
  for (const k of kinds) {
    const { group, plural } = groupAndPlural(k);
    byGroup.set(group, [...(byGroup.get(group) ?? []), `${plural}${suffix}`]);
  }
  return [...byGroup].sort(([a], [b]) => (a < b ? -1 : 1)).map(([group, resources]) => ({ apiGroups: [group], resources: [...new Set(resources)].sort(), verbs }));
}

const read = ['get', 'list', 'watch'];
// Server-side apply is a PATCH, and a PATCH that creates the object needs `create` as well.
const apply = ['create', 'patch'];

/** Across the cluster. Each line names the code that needs it. */
export function controllerClusterRules(): PolicyRule[] {
  return [
    // kube/cache.ts: an informer (list, watch) per kind it pushes to agents or reconciles; get for single reads.
    ...rulesFor([...pushedKinds, 'ServiceAccount', 'Deployment'], read),
    // capture/annotator.ts: ambient.istio.io/redirection on each captured Pod (merge patch).
    { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    // waypoints/deployer.ts: each waypoint's ServiceAccount, Deployment and Service, applied and deleted.
    ...rulesFor(['ServiceAccount', 'Service', 'Deployment'], [...apply, 'delete']),
    // main.ts: the TrustBundle the leader publishes (server-side apply).
    ...rulesFor(['TrustBundle'], apply),
    // waypoints/{route-status,policy-status,deployer}.ts: status written through the status subresource.
    ...rulesFor(['HTTPRoute', 'GRPCRoute', 'Gateway', 'AuthorizationPolicy', 'RequestAuthentication', 'PeerAuthentication', 'LocalRateLimit'], ['patch'], '/status'),
    // push/token-review.ts: who an agent's token belongs to.
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    // main.ts: the webhook configuration's CA bundle (create is not limited by name in RBAC).
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['validatingwebhookconfigurations'], verbs: ['create'] },
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['validatingwebhookconfigurations'], verbs: ['get', 'patch'], resourceNames: [webhookConfigurationName] },
  ];
}

/** In ambit-system only. */
export function controllerNamespaceRules(): PolicyRule[] {
  return [
    // kube/leader.ts: the leader Lease, read, created and renewed by update.
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['ambit-controller'] },
    // ca/secret.ts and main.ts: the CA's keys (its own Secret, or Istio's plugged-in cacerts), read,
    // watched by name, made by the first leader and rewritten on a rotation.
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'update'], resourceNames: [caSecretName, pluggedSecretName] },
    // main.ts: the CA roots the agents mount (server-side apply).
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'patch'], resourceNames: [caRootConfigMap.name] },
  ];
}
