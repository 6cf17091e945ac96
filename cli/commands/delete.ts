// `ambit delete -f FILE|DIR` or `ambit delete KIND NAME...`: removes resources; a Namespace takes
// everything in it along, and an owner its dependents (a Deployment its ReplicaSets and their pods)
// unless `--cascade=orphan`, as kubectl's flag says.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { kindByName, kindInfo } from '../../shared/resources/kinds.js';
import { readManifests } from '../../shared/resources/manifest.js';
import type { Resource, ResourceRef } from '../../shared/resources/types.js';
import type { CliContext } from '../context.js';
import { deleteResources, type PropagationPolicy, withCluster } from '../kube.js';

/** kubectl's --cascade values and the propagationPolicy each sends. */
const cascades = new Map<string, PropagationPolicy>([
  ['background', 'Background'],
  ['foreground', 'Foreground'],
  ['orphan', 'Orphan'],
]);

export async function del(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { filename: { type: 'string', short: 'f', multiple: true }, namespace: { type: 'string', short: 'n' }, 'ignore-not-found': { type: 'boolean' }, cascade: { type: 'string' } },
  });
  const cascade = values.cascade ?? 'background';
  if (!cascades.has(cascade)) throw new AmbitError('BadArgs', `--cascade must be background, foreground or orphan, not ${JSON.stringify(cascade)}`);
  const refs: ResourceRef[] = [];
  if (values.filename?.length) {
    for (const d of readManifests(values.filename)) {
      const r = d.value as Resource;
      const info = kindInfo(r?.kind);
      if (!info || typeof r.metadata?.name !== 'string') throw new AmbitError('ResourceInvalid', `${d.file}:${d.line}: a resource needs a known kind and metadata.name`);
      refs.push({ kind: info.kind, namespace: info.namespaced ? (r.metadata.namespace ?? 'default') : '', name: r.metadata.name });
    }
  } else {
    const [kindName, ...names] = positionals;
    const info = kindName ? kindByName(kindName) : undefined;
    if (!info) throw new AmbitError('BadArgs', kindName ? `unknown kind ${kindName}` : 'delete needs -f FILE or KIND NAME');
    if (!names.length) throw new AmbitError('BadArgs', `delete ${kindName} needs a name`);
    for (const name of names) refs.push({ kind: info.kind, namespace: info.namespaced ? (values.namespace ?? 'default') : '', name });
  }
  const deleted = await withCluster(ctx, (client) => deleteResources(client, refs, { ignoreNotFound: values['ignore-not-found'] === true, propagationPolicy: cascades.get(cascade)! }));
  for (const d of deleted) process.stdout.write(`${d} deleted\n`);
  return 0;
}
