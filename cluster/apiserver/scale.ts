// The `scale` subresource of Deployments as an autoscaling/v1 Scale, which `kubectl scale` reads
// and patches (`{"spec":{"replicas":N}}`). A Scale has one writable field, so its patches are
// applied here rather than by patch.ts: merge and strategic merge are the same on it, and a JSON
// patch may only replace /spec/replicas.

import { type Deployment, type Pod, type Resource } from '../../shared/resources/types.js';
import { badRequest, invalid, unsupportedMediaType } from './errors.js';
import { mediaType, parseJson } from './http.js';
import { podOwner } from '../../shared/resources/owners.js';

export interface Scale {
  apiVersion: 'autoscaling/v1';
  kind: 'Scale';
  metadata: Resource['metadata'];
  spec: { replicas: number };
  status: { replicas: number; selector: string };
}

export function scaleOf(d: Deployment, pods: Pod[]): Scale {
  const { name, namespace, uid, resourceVersion, creationTimestamp } = d.metadata;
  const running = pods.filter((p) => podOwner(p) === `Deployment/${name}` && p.status?.phase !== 'Failed');
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name, ...(namespace ? { namespace } : {}), ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}), ...(creationTimestamp ? { creationTimestamp } : {}) },
    spec: { replicas: d.spec?.replicas ?? 1 },
    status: {
      replicas: running.length,
      selector: Object.entries(d.spec?.selector.matchLabels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    },
  };
}

const scalePatchTypes = ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json'];

/** The replicas a PATCH of the Scale asks for (the current ones when it does not say). */
export function patchedReplicas(current: Scale, contentType: string | undefined, body: Buffer): { replicas: number; resourceVersion?: string } {
  const type = mediaType(contentType);
  if (!scalePatchTypes.includes(type)) throw unsupportedMediaType(type, scalePatchTypes);
  const patch = parseJson(body);
  if (type === 'application/json-patch+json') {
    if (!Array.isArray(patch)) throw badRequest('a JSON patch is an array of operations');
    let replicas: unknown = current.spec.replicas;
    for (const op of patch as { op?: string; path?: string; value?: unknown }[]) {
      if (op.op === 'test' && op.path === '/spec/replicas' && op.value !== current.spec.replicas) {
        throw invalid('Scale', 'autoscaling', current.metadata.name, [{ reason: 'FieldValueInvalid', message: `test failed: it is ${current.spec.replicas}`, field: 'spec.replicas' }]);
      }
      if ((op.op === 'replace' || op.op === 'add') && op.path === '/spec/replicas') replicas = op.value;
      else if (op.op !== 'test') throw badRequest(`a Scale's JSON patch may only replace /spec/replicas, not ${op.op} ${op.path}`);
    }
    return { replicas: checkedReplicas(current, replicas) };
  }
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw badRequest('a merge patch is a JSON object');
  const p = patch as { spec?: { replicas?: unknown }; metadata?: { resourceVersion?: unknown } };
  const rv = p.metadata?.resourceVersion;
  return { replicas: checkedReplicas(current, p.spec?.replicas ?? current.spec.replicas), ...(typeof rv === 'string' ? { resourceVersion: rv } : {}) };
}

/** spec.replicas of a Scale body (PUT), checked. */
export function checkedReplicas(current: Pick<Scale, 'metadata'>, replicas: unknown): number {
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw invalid('Scale', 'autoscaling', current.metadata.name, [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(replicas)}: must be a non-negative integer`, field: 'spec.replicas' }]);
  }
  return replicas;
}
