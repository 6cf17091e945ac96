// What Kubernetes checks of a ValidatingWebhookConfiguration beyond its schema (names unique, one
// of url or service, an https URL without user, query or fragment), and what the local cluster
// cannot do: call a webhook by Service, since its Services live inside the cluster's network
// namespaces and the API server runs outside them, so such a call fails and failurePolicy decides.
// Calling webhooks is the API server's.

import type { FieldProblem } from '../errors.js';
import { resourceName, type Resource } from './types.js';

/** The name kubectl shows in a denial: `admission webhook "validation.ambit.dev" denied the request`. */
export const webhookName = 'validation.ambit.dev';
export const webhookConfigurationName = 'ambit-validation';
export const webhookPath = '/validate';
/** The groups whose kinds the mesh gives meaning to, and its webhook reviews. */
export const meshGroups = ['security.istio.io', 'networking.istio.io', 'gateway.networking.k8s.io', 'ambit.dev'];

export interface WebhookClientConfig {
  url?: string;
  service?: { namespace: string; name: string; path?: string; port?: number };
  caBundle?: string;
}

export function validateWebhookConfigurations(resources: Resource[]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  resources.forEach((r, index) => {
    if (r.kind !== 'ValidatingWebhookConfiguration') return;
    const add = (field: string, message: string) => problems.push({ index, resource: resourceName(r), field, message });
    const hooks = ((r as { webhooks?: { name: string; clientConfig: WebhookClientConfig }[] }).webhooks ?? []);
    const seen = new Set<string>();
    hooks.forEach((h, i) => {
      const at = `webhooks[${i}]`;
      if (seen.has(h.name)) add(`${at}.name`, `Duplicate value: ${JSON.stringify(h.name)}`);
      seen.add(h.name);
      const c = h.clientConfig;
      if ((c.url === undefined) === (c.service === undefined)) {
        add(`${at}.clientConfig`, 'Required value: exactly one of url or service is required');
        return;
      }
      // A Service reference is stored (ambit install registers one); the local API server cannot call
      // it, and a call fails as to a Service without endpoints (cluster/apiserver/webhooks.ts).
      if (c.service) return;
      let url: URL;
      try {
        url = new URL(c.url!);
      } catch {
        add(`${at}.clientConfig.url`, `Invalid value: ${JSON.stringify(c.url)}: host must be specified`);
        return;
      }
      if (url.protocol !== 'https:') add(`${at}.clientConfig.url`, `Invalid value: ${JSON.stringify(c.url)}: 'https' is the only allowed URL scheme`);
      if (url.username || url.password) add(`${at}.clientConfig.url`, `Invalid value: ${JSON.stringify(c.url)}: user information is not permitted in the URL`);
      if (url.hash || c.url!.includes('#')) add(`${at}.clientConfig.url`, `Invalid value: ${JSON.stringify(c.url)}: fragments are not permitted in the URL`);
      if (url.search) add(`${at}.clientConfig.url`, `Invalid value: ${JSON.stringify(c.url)}: query parameters are not permitted in the URL`);
    });
  });
  return problems;
}

/**
 * The ValidatingWebhookConfiguration that points the API server at the mesh controller: by URL (the
 * local cluster) or by Service (a real cluster). `ambit install` applies it without `caBundle` and
 * `failurePolicy`; the controller's leader applies both (the roots that signed its serving
 * certificate, and Fail, as istiod's: a write the mesh cannot review is refused rather than let through).
 */
export function meshWebhookConfiguration(clientConfig: WebhookClientConfig, managedBy: string, failurePolicy?: 'Fail'): Resource {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: webhookConfigurationName, labels: { 'app.kubernetes.io/managed-by': managedBy } },
    webhooks: [
      {
        name: webhookName,
        clientConfig,
        rules: [{ apiGroups: meshGroups, apiVersions: ['*'], resources: ['*'], operations: ['CREATE', 'UPDATE'], scope: '*' }],
        ...(failurePolicy ? { failurePolicy } : {}),
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 10,
      },
    ],
  } as unknown as Resource;
}
