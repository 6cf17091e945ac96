// What `ambit install` and `ambit uninstall` do on a cluster beyond rendering: look at what is there
// (another installer's Istio or Gateway API CRDs are never taken over; the agents' query API token is
// kept across installs), then apply or delete through the Kubernetes API as `ambit apply` and
// `ambit delete` do (cli/kube.ts).

import { randomBytes } from 'node:crypto';
import type { KubeClient } from '../shared/kube/client.js';
import { resourceKind } from '../shared/kube/paths.js';
import type { Resource, ResourceRef } from '../shared/resources/types.js';
import { webhookConfigurationName } from '../shared/resources/webhook-configurations.js';
import { agentAdminSecret, agentName, controllerName, partOfLabel, render } from './manifests.js';
import { controllerServiceName, installNamespace, type InstallValues } from './values.js';

const isAmbits = (r: Resource) => r.metadata.labels?.['app.kubernetes.io/part-of'] === partOfLabel['app.kubernetes.io/part-of'];

export interface InstallPlan {
  /** What to apply, in order. */
  resources: Resource[];
  /** CRDs already on the cluster and not ambit's (an Istio's, the Gateway API's own): left as they are. */
  kept: string[];
}

/** A fresh token for the agents' query API (clients other than the node's loopback must bring it). */
export function newAdminToken(): string {
  return randomBytes(32).toString('base64url');
}

export async function planInstall(client: KubeClient, values: InstallValues): Promise<InstallPlan> {
  const secret = await client.get(resourceKind('Secret'), installNamespace, agentAdminSecret);
  const stored = (secret as { data?: { token?: string } } | undefined)?.data?.token;
  const adminToken = stored ? Buffer.from(stored, 'base64').toString('utf8') : newAdminToken();
  const existing = new Map((await client.list(resourceKind('CustomResourceDefinition'))).items.map((c) => [c.metadata.name, c]));
  const kept: string[] = [];
  const resources = render(values, { adminToken }).filter((r) => {
    if (r.kind !== 'CustomResourceDefinition') return true;
    const there = existing.get(r.metadata.name);
    if (there && !isAmbits(there)) kept.push(r.metadata.name);
    return !there || isAmbits(there);
  });
  return { resources, kept };
}

/**
 * What `ambit uninstall` deletes, in order: the webhook configuration first (no write waits on a
 * controller about to go), then the workloads, the RBAC, and the namespace (with what the controller
 * made in it: the CA Secret, the Lease, the CA roots' ConfigMap). With `purgeCrds`, the CRDs ambit
 * installed, and with them every object of their kinds (policies, routes), as `istioctl uninstall
 * --purge` does; never a CRD another installer made.
 */
export async function uninstallRefs(client: KubeClient, purgeCrds: boolean): Promise<ResourceRef[]> {
  const ns = (kind: string, name: string): ResourceRef => ({ kind, namespace: installNamespace, name });
  const cluster = (kind: string, name: string): ResourceRef => ({ kind, namespace: '', name });
  const refs = [
    cluster('ValidatingWebhookConfiguration', webhookConfigurationName),
    ns('DaemonSet', agentName),
    ns('Deployment', controllerName),
    ns('PodDisruptionBudget', controllerName),
    ns('Service', controllerServiceName),
    ns('Secret', agentAdminSecret),
    cluster('ClusterRoleBinding', controllerName),
    cluster('ClusterRole', controllerName),
    ns('RoleBinding', controllerName),
    ns('Role', controllerName),
    ns('ServiceAccount', controllerName),
    ns('ServiceAccount', agentName),
    cluster('Namespace', installNamespace),
  ];
  if (purgeCrds) {
    const crds = (await client.list(resourceKind('CustomResourceDefinition'))).items.filter(isAmbits);
    refs.push(...crds.map((c) => cluster('CustomResourceDefinition', c.metadata.name)));
  }
  return refs;
}

/** The agent pods still on the cluster (each removes its node's CNI entry as it stops). */
export async function agentPods(client: KubeClient): Promise<string[]> {
  const pods = await client.list(resourceKind('Pod'), { namespace: installNamespace, labelSelector: `app.kubernetes.io/name=${agentName}` });
  return pods.items.map((p) => p.metadata.name);
}
