// How the CLI reads and writes the cluster: through the Kubernetes API, as kubectl does, with the
// kubeconfig of the CLI context (KUBECONFIG, else the local cluster's). `ambit apply` is server-side
// apply as the field manager `ambit`; `ambit get` a list; `ambit delete` a DELETE with kubectl's
// propagation policy. The controller is asked only what only it knows (which agents run a revision).

import { existsSync } from 'node:fs';
import { AmbitError, type FieldProblem, ResourceInvalid } from '../shared/errors.js';
import { KubeApiError, KubeClient } from '../shared/kube/client.js';
import { loadKubeconfig } from '../shared/kube/config.js';
import { resourceKind } from '../shared/kube/paths.js';
import { kindInfo } from '../shared/resources/kinds.js';
import { type Resource, type ResourceRef, resourceName } from '../shared/resources/types.js';
import type { CliContext } from './context.js';

/** The field manager of what `ambit apply` writes (`kubectl get -o yaml --show-managed-fields` names it). */
export const fieldManager = 'ambit';

export function clusterClient(ctx: CliContext): KubeClient {
  if (!existsSync(ctx.kubeconfig)) throw new AmbitError('NoCluster', `no kubeconfig at ${ctx.kubeconfig}: run \`ambit up\` for the local cluster, or set KUBECONFIG`);
  return new KubeClient(loadKubeconfig(ctx.kubeconfig), { userAgent: 'ambit-cli' });
}

/** Runs `fn` with a client, closed after (the CLI must not keep a keep-alive socket open at exit). */
export async function withCluster<T>(ctx: CliContext, fn: (client: KubeClient) => Promise<T>): Promise<T> {
  const client = clusterClient(ctx);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

export async function listResources(client: KubeClient, kind: string, namespace?: string): Promise<Resource[]> {
  return (await client.list(resourceKind(kind), namespace ? { namespace } : {})).items;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface AppliedResource {
  resource: string;
  action: ApplyAction;
  warnings: string[];
}

export interface Applied {
  results: AppliedResource[];
  /** The newest resourceVersion written: what `--wait` waits for the controller and agents to reach. */
  resourceVersion: number;
}

/**
 * Applies a batch: every object is first sent as a dry run (the API server's schemas and the
 * mesh's admission webhook judge it; nothing is stored), and only when all pass are they applied,
 * so a bad object in a file leaves the cluster as it was. Namespaces go first, as objects in them
 * need them; objects in a namespace the batch makes are checked when they are applied.
 */
export async function applyResources(client: KubeClient, resources: Resource[], dryRun: boolean): Promise<Applied> {
  const order = [...resources.keys()].sort((a, b) => installRank(resources[a]!.kind) - installRank(resources[b]!.kind));
  const existingNamespaces = new Set((await client.list(resourceKind('Namespace'))).items.map((n) => n.metadata.name));
  const batchNamespaces = new Set(resources.filter((r) => r.kind === 'Namespace').map((r) => r.metadata.name));
  const problems: FieldProblem[] = [];
  for (const i of order) {
    const r = resources[i]!;
    const namespace = kindInfo(r.kind)?.namespaced ? (r.metadata.namespace ?? 'default') : undefined;
    if (namespace && !existingNamespaces.has(namespace)) {
      if (!batchNamespaces.has(namespace)) problems.push({ index: i, resource: resourceName(r), field: 'metadata.namespace', message: `${namespace} does not exist` });
      continue;
    }
    try {
      await client.apply(resourceKind(r.kind), withNamespace(r), fieldManager, true, { dryRun: true });
    } catch (err) {
      problems.push(...problemsOf(err, i, r));
    }
  }
  if (problems.length) throw new ResourceInvalid(problems);
  const results: AppliedResource[] = new Array<AppliedResource>(resources.length);
  let newest = 0;
  for (const i of order) {
    const r = withNamespace(resources[i]!);
    const kind = resourceKind(r.kind);
    const before = await client.get(kind, r.metadata.namespace ?? '', r.metadata.name);
    const warnings: string[] = [];
    let after: Resource;
    try {
      after = await client.apply(kind, r, fieldManager, true, { dryRun, onWarning: (w) => warnings.push(w) });
    } catch (err) {
      throw problemsOf(err, i, r).length ? new ResourceInvalid(problemsOf(err, i, r)) : err;
    }
    const action: ApplyAction = !before ? 'created' : before.metadata.resourceVersion === after.metadata.resourceVersion ? 'unchanged' : 'configured';
    results[i] = { resource: resourceName(r), action, warnings };
    newest = Math.max(newest, Number(after.metadata.resourceVersion) || 0);
  }
  return { results, resourceVersion: newest };
}

export type PropagationPolicy = 'Background' | 'Foreground' | 'Orphan';

/**
 * Deletes each object (Namespaces last: they take what is in them); dependents go by the garbage
 * collector as the policy says. A missing object is an error unless `ignoreNotFound`.
 */
export async function deleteResources(client: KubeClient, refs: ResourceRef[], o: { ignoreNotFound?: boolean; propagationPolicy?: PropagationPolicy } = {}): Promise<string[]> {
  const missing = [];
  for (const ref of refs) if (!(await client.get(resourceKind(ref.kind), ref.namespace, ref.name))) missing.push(ref);
  if (missing.length && !o.ignoreNotFound) throw new AmbitError('NotFound', `${missing.map((r) => resourceName({ kind: r.kind, metadata: { name: r.name, ...(r.namespace ? { namespace: r.namespace } : {}) } })).join(', ')} not found`);
  const deleted: string[] = [];
  const ordered = [...refs.filter((r) => r.kind !== 'Namespace'), ...refs.filter((r) => r.kind === 'Namespace')];
  for (const ref of ordered) {
    if (missing.includes(ref)) continue;
    const gone = await client.delete(resourceKind(ref.kind), ref.namespace, ref.name, o.propagationPolicy);
    if (gone) deleted.push(resourceName({ kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } }));
  }
  return deleted;
}

/** Sets (a string) or removes (null) labels of a Namespace by a merge patch; says whether anything changed. */
export async function labelNamespace(client: KubeClient, name: string, labels: Record<string, string | null>): Promise<{ changed: boolean; resourceVersion: number }> {
  const Namespace = resourceKind('Namespace');
  const before = await client.get(Namespace, '', name);
  if (!before) throw new AmbitError('NotFound', `namespace ${name} not found`);
  const after = await client.patch(Namespace, '', name, { metadata: { labels } }, 'merge');
  return { changed: before.metadata.resourceVersion !== after.metadata.resourceVersion, resourceVersion: Number(after.metadata.resourceVersion) || 0 };
}

/**
 * Helm's install order, for the kinds ambit knows: Namespaces, then what pods refer to, then
 * Services before the workloads they front (so the scheduler spreads a Service's pods from the
 * first one), then the rest; the file's order within each. A stable sort keeps it.
 */
const installOrder = ['Namespace', 'PodDisruptionBudget', 'ServiceAccount', 'Secret', 'ConfigMap', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'DaemonSet', 'Deployment'];
function installRank(kind: string): number {
  const i = installOrder.indexOf(kind);
  return i < 0 ? installOrder.length : i;
}

/** A namespaced object with no namespace goes to `default`, as kubectl sends it. */
function withNamespace(r: Resource): Resource {
  return kindInfo(r.kind)?.namespaced && !r.metadata.namespace ? { ...r, metadata: { ...r.metadata, namespace: 'default' } } : r;
}

/** The API server's 422 causes (or a webhook's denial) as field problems of the batch's object `index`. */
function problemsOf(err: unknown, index: number, r: Resource): FieldProblem[] {
  if (!(err instanceof KubeApiError) || (err.status !== 422 && err.status !== 400 && err.status !== 403)) return [];
  const resource = resourceName(r);
  const causes = (err.details as { causes?: { field?: string; message?: string }[] } | undefined)?.causes ?? [];
  if (causes.length) return causes.map((c) => ({ index, resource, field: c.field ?? '', message: c.message ?? err.message }));
  // A webhook's denial or a bad request: the message names the field itself.
  return [{ index, resource, field: '', message: err.message.replace(/^PATCH \S+: \d+ \w*: /, '') }];
}
