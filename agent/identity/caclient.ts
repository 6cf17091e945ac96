// The agent's client of the controller's CA: a CSR over HTTPS to the controller's agent port,
// authenticated as this node, the controller's certificate checked against the pinned CA.

import { request } from 'node:https';
import { AmbitError } from '../../shared/errors.js';
import { nodeHeader } from '../../shared/protocol/config.js';

export const certificatesPath = '/v1/certificates';

export interface IssuedResponse {
  chain: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
  trustBundle: string[];
}

/** The CA answered, and said no (the reason is the CA's). */
export class CertificateRefused extends AmbitError {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super('CertificateRefused', message);
  }
}

/** How an agent reaches and authenticates to the controller; the push channel and the CA share it. */
export interface NodeChannelOptions {
  /** wss:// or https:// host and port of the controller's agent port: the replica in use now. */
  url: () => string;
  /** Told when a connection to `url` failed, so the next attempt may go to another replica. */
  failed?: (url: string) => void;
  node: string;
  /** The bootstrap token (a ServiceAccount token bound to the node), read at every use: the kubelet rotates it. */
  token: () => string;
  /** The roots that may sign the controller's certificate, read at every connection (they rotate). */
  ca: () => string[];
  /** The node certificate, once there is one: presented instead of the token. */
  credential?: () => { key: string; cert: string } | undefined;
  /** Told when the controller refused the node certificate, so the next attempt uses the token. */
  onCertificateRejected?: () => void;
}

/** TLS client options and headers that prove the node: its certificate, or else its token. */
export function nodeAuthentication(o: Pick<NodeChannelOptions, 'node' | 'token' | 'credential'>): { tls: { key?: string; cert?: string }; headers: Record<string, string> } {
  const c = o.credential?.();
  if (c) return { tls: { key: c.key, cert: c.cert }, headers: {} };
  return { tls: {}, headers: { authorization: `Bearer ${o.token()}`, [nodeHeader]: o.node } };
}

export class CaClient {
  constructor(private readonly o: NodeChannelOptions) {}

  requestCertificate(csrPem: string, ttlSeconds: number): Promise<IssuedResponse> {
    const body = JSON.stringify({ csr: csrPem, ttlSeconds });
    const controller = this.o.url();
    const url = new URL(certificatesPath, controller.replace(/^wss:/, 'https:'));
    const auth = nodeAuthentication(this.o);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          ca: this.o.ca(),
          ...auth.tls,
          // A fresh connection each time: the credential may have changed since the last one.
          agent: false,
          timeout: 10_000,
          headers: { ...auth.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            let data: IssuedResponse & { error?: { reason?: string; message: string } };
            try {
              data = JSON.parse(text) as typeof data;
            } catch {
              return reject(new AmbitError('CaUnavailable', `the CA answered ${res.statusCode} without JSON`));
            }
            if (res.statusCode === 200) return resolve(data);
            if (data.error && res.statusCode === 403) return reject(new CertificateRefused(data.error.reason ?? 'refused', data.error.message));
            if (res.statusCode === 401 && auth.tls.cert) this.o.onCertificateRejected?.();
            reject(new AmbitError('CaUnavailable', `the CA answered ${res.statusCode}: ${data.error?.message ?? text}`));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', (err) => {
        this.o.failed?.(controller);
        reject(new AmbitError('CaUnavailable', `cannot reach the CA at ${url.host}: ${err.message}`));
      });
      req.end(body);
    });
  }
}
