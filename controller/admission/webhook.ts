// The mesh controller as a validating admission webhook, as istiod is one: the Kubernetes API server
// sends each write of the Istio, Gateway API and ambit kinds as an admission.k8s.io/v1
// AdmissionReview, and the controller answers with the same review `ambit apply` runs (what no proxy
// can honour is refused, naming the field; what a node proxy cannot enforce comes back as warnings,
// which kubectl prints). Nothing is stored when it refuses. The schema is the API server's to check.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJson } from '../../shared/http/body.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { validateMeshRules } from '../../shared/resources/validate.js';
import type { Resource } from '../../shared/resources/types.js';
import { reviewPolicy } from '../resources/policy-review.js';

import { meshWebhookConfiguration, webhookConfigurationName, webhookName, webhookPath, type WebhookClientConfig } from '../../shared/resources/webhook-configurations.js';

export { webhookConfigurationName, webhookName, webhookPath };

interface AdmissionRequest {
  uid: string;
  operation?: string;
  object?: Resource;
}

export interface Verdict {
  allowed: boolean;
  warnings: string[];
  /** Field problems, `spec.action: ...`, when refused. */
  problems: { field: string; message: string }[];
}

/** The review of one object, as `ambit apply` reviews it. */
export function review(r: Resource, rootNamespace: string): Verdict {
  const problems = validateMeshRules([r], rootNamespace).map((p) => ({ field: p.field, message: p.message }));
  const policy = reviewPolicy(r, rootNamespace);
  if (policy) problems.push(...policy.problems);
  return { allowed: problems.length === 0, warnings: policy?.warnings ?? [], problems };
}

/** The AdmissionReview response for a request body. */
export function answer(body: unknown, rootNamespace: string): unknown {
  const request = (body as { request?: AdmissionRequest } | undefined)?.request;
  if (!request || typeof request.uid !== 'string') throw new Error('not an admission.k8s.io/v1 AdmissionReview with a request.uid');
  const response = (v: Record<string, unknown>) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, ...v } });
  // Deletes, and objects of kinds the mesh does not review, pass.
  if (request.operation === 'DELETE' || !request.object) return response({ allowed: true });
  const v = review(request.object, rootNamespace);
  const warnings = v.warnings.length ? { warnings: v.warnings } : {};
  if (v.allowed) return response({ allowed: true, ...warnings });
  const name = `${request.object.kind} ${request.object.metadata?.namespace ? `${request.object.metadata.namespace}/` : ''}${request.object.metadata?.name ?? ''}`;
  return response({
    allowed: false,
    ...warnings,
    // As istiod answers: 400, so kubectl prints `admission webhook "validation.ambit.dev" denied the
    // request: ...` with the fields named, rather than a bare "The request is invalid".
    status: {
      code: 400,
      reason: 'BadRequest',
      message: `${name}: ${v.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
      details: { causes: v.problems.map((p) => ({ reason: 'FieldValueInvalid', field: p.field, message: p.message })) },
    },
  });
}

/** The HTTPS server of the webhook; its certificate is the caller's (and can change: setSecureContext). */
export function webhookServer(tls: { key: string; cert: string }, rootNamespace: string, log: Logger): Server {
  return createServer({ key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2' }, (req: IncomingMessage, res: ServerResponse) => {
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'https://webhook').pathname !== webhookPath) return reply(404, { error: `POST ${webhookPath} only` });
    readJson(req, 8 * 1024 * 1024)
      .then((body) => reply(200, answer(body, rootNamespace)))
      .catch((err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'admission review refused: malformed request');
        reply(400, { error: errorMessage(err) });
      });
  });
}

/** The ValidatingWebhookConfiguration that points the API server at this controller, with the roots it serves under. */
export function webhookConfiguration(clientConfig: WebhookClientConfig, caPem: string): Resource {
  return meshWebhookConfiguration({ ...clientConfig, caBundle: Buffer.from(caPem).toString('base64') }, 'ambit-controller', 'Fail');
}
