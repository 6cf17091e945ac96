// Which pods are in the mesh: their namespace carries ambit.dev/dataplane-mode=ambient (or Istio's
// istio.io/dataplane-mode=ambient), and the pod does not opt out with the same label set to none.
// The agent captures by this rule and the local cluster holds a pod's start on it.

import type { Labels } from './resources/types.js';

export const enrollLabels = ['ambit.dev/dataplane-mode', 'istio.io/dataplane-mode'];
/** On a Pod whose traffic its node's agent redirects, as Istio's CNI node agent marks one (value `enabled`). */
export const redirectionAnnotation = 'ambient.istio.io/redirection';
/** On a Pod its node's agent could not capture: why. */
export const captureFailureAnnotation = 'ambit.dev/capture-failure';

export function isEnrolled(namespaceLabels: Labels | undefined, podLabels: Labels | undefined): boolean {
  const optOut = enrollLabels.some((l) => podLabels?.[l] === 'none');
  return !optOut && enrollLabels.some((l) => namespaceLabels?.[l] === 'ambient');
}
