// The CA's endpoint for node agents, on the agents' TLS port: POST /v1/certificates with a CSR
// (PEM) and the lifetime wanted, from an authenticated node. Answers the chain and the trust
// bundle, or a refusal naming the reason; every refusal is logged and counted.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/log.js';
import { fromPem } from '../../shared/identity/x509.js';
import type { NodeAuth } from '../push/auth.js';
import type { ClusterReader } from '../kube/view.js';
import type { ControllerMetrics } from '../metrics.js';
import { CsrRefused, issue, type IssuerOptions } from './issuer.js';

export const certificatesPath = '/v1/certificates';

export interface CaServiceOptions {
  issuer: IssuerOptions;
  /** Where the pods are read: which node runs which identity. */
  cluster: ClusterReader;
  log: Logger;
  metrics: ControllerMetrics;
  trustBundle: () => string[];
}

export function caHandler(o: CaServiceOptions) {
  return (req: IncomingMessage, res: ServerResponse, { node }: NodeAuth): void => {
    const reply = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST' || req.url !== certificatesPath) return reply(404, { error: { code: 'NotFound', message: `no route ${req.method} ${req.url}` } });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > 64 * 1024) req.destroy();
    });
    req.on('end', () => {
      let request: { csr?: unknown; ttlSeconds?: unknown };
      try {
        request = JSON.parse(body) as typeof request;
        if (typeof request !== 'object' || request === null) throw new Error('not an object');
      } catch {
        return reply(400, { error: { code: 'BadRequest', message: 'the body must be a JSON object: {"csr": "<PEM>", "ttlSeconds": 86400}' } });
      }
      const der = typeof request.csr === 'string' ? fromPem(request.csr)[0] : undefined;
      const ttl = typeof request.ttlSeconds === 'number' ? request.ttlSeconds : undefined;
      try {
        if (!der) throw new CsrRefused('malformed-csr', 'the body has no PEM CSR in "csr"');
        const cert = issue(o.issuer, node, der, ttl, o.cluster);
        o.metrics.certificatesIssued.inc();
        o.log.info({ node, identity: cert.id, serial: cert.serial, notAfter: cert.notAfter }, 'certificate issued');
        reply(200, { ...cert, trustBundle: o.trustBundle() });
      } catch (err) {
        if (!(err instanceof CsrRefused)) {
          // A bug or an unexpected input must not take the CA (and the controller) down.
          o.log.error({ node, err: (err as Error).message }, 'certificate request failed');
          return reply(500, { error: { code: 'Internal', message: (err as Error).message } });
        }
        o.metrics.csrRefused.inc({ reason: err.reason, node });
        o.log.warn({ node, reason: err.reason, err: err.message }, 'certificate request refused');
        reply(403, { error: { code: err.code, reason: err.reason, message: err.message } });
      }
    });
  };
}
