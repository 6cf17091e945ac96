// Installs the mesh's CustomResourceDefinitions (shared/kube/crds.ts: Istio's and the Gateway API's as
// upstream publishes them, ambit.dev's own) into the local cluster's store at start, as an installer
// would, checked as the API server checks any CRD, and never replacing one already there.

import type { Store } from '../../controller/store/store.js';
import { meshCrds, partOfLabel } from '../../shared/kube/crds.js';
import type { Resource } from '../../shared/resources/types.js';
import { type Crd, crdProblems, crdStatus } from './crd-validation.js';
import { builtInGroups } from './resources.js';

export { meshCrds };

/**
 * Installs the mesh's CRDs that `store` lacks, established, in one commit; one already there (a
 * user's own, or an older ambit's) is left as it is. Returns the names installed.
 */
export function installMeshCrds(store: Store): string[] {
  const existing = store.list('CustomResourceDefinition') as Crd[];
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const added: Crd[] = [];
  for (const crd of meshCrds()) {
    if (existing.some((e) => e.metadata.name === crd.metadata.name)) continue;
    const all = [...existing, ...added];
    // A kind another CRD already serves (a user's Gateway of networking.istio.io, say) is not taken over.
    if (all.some((o) => o.spec.names.kind === crd.spec.names.kind)) continue;
    const problems = crdProblems(crd, undefined, builtInGroups, () => undefined);
    if (problems.length) throw new Error(`the mesh's CRD ${crd.metadata.name} is invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    // Labelled as `ambit install` labels them: the local cluster installs them as ambit's installer would.
    crd.metadata.labels = { ...crd.metadata.labels, ...partOfLabel };
    crd.status = crdStatus(crd, all, undefined, now);
    (crd.metadata as Resource['metadata'] & { generation?: number }).generation = 1;
    added.push(crd);
  }
  if (added.length) store.commit(added);
  return added.map((c) => c.metadata.name);
}
