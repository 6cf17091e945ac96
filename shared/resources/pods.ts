// Finding a pod the way people name one on a command line or in a form: by its name, or as
// `deploy/NAME` for a running pod of a Deployment (as kubectl does). Shared by the CLI and the
// controller's dashboard; where the list of pods comes from is theirs.

import { AmbitError } from '../errors.js';
import { podOwner } from './owners.js';
import type { Pod } from './types.js';

/** A pod by name, or the first running pod of `deploy/NAME`, among `pods` of one namespace. */
export function findPodIn(pods: Pod[], target: string, namespace: string): Pod {
  const m = /^(deploy|deployment)\/(.+)$/.exec(target);
  const inNs = pods.filter((p) => (p.metadata.namespace ?? 'default') === namespace);
  const pod = m
    ? inNs.find((p) => podOwner(p) === `Deployment/${m[2]}` && p.status.phase === 'Running')
    : inNs.find((p) => p.metadata.name === target);
  if (!pod) throw new AmbitError('NotFound', `${m ? `no running pod of Deployment ${namespace}/${m[2]}` : `pod ${namespace}/${target} not found`}; see \`ambit get pods -n ${namespace}\``);
  return pod;
}
