// A RequestAuthentication's jwksUri, fetched by the waypoint through the mesh: the URI must name a
// Service of the cluster (`http://name.namespace.svc.cluster.local[:port]/path`, the short forms, or
// its ClusterIP), and the document comes from one of its endpoints over HBONE, with the waypoint's
// identity, as any request the waypoint sends. Nothing leaves the cluster; an issuer outside it
// (Istio fetches those from istiod) is refused with a message that says so.

import http from 'node:http';
import type { Destinations } from './destinations.js';
import { noAffinity } from './proxy/forward.js';
import type { Upstreams } from './proxy/upstream.js';
import type { WaypointState } from './state.js';

/** A JWKS is a few keys; more than this is not one. */
const maxBytes = 256 * 1024;

export class JwksUnreachable extends Error {}

/**
 * `ready` resolves once the waypoint has its certificate: a rule's first fetch starts with the
 * configuration, which can come first, and waits for it rather than failing (the signal bounds the wait).
 */
export function jwksFetcher(state: WaypointState, destinations: Destinations, upstreams: Upstreams, ready: () => Promise<void>): (uri: string, signal: AbortSignal) => Promise<string> {
  return async (uri, signal) => {
    await Promise.race([ready(), new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }))]);
    return fetchJwks(state, destinations, upstreams, uri, signal);
  };
}

function fetchJwks(state: WaypointState, destinations: Destinations, upstreams: Upstreams, uri: string, signal: AbortSignal): Promise<string> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return Promise.reject(new JwksUnreachable(`jwksUri ${JSON.stringify(uri)} is not a URL`));
  }
  if (url.protocol !== 'http:') return Promise.reject(new JwksUnreachable(`jwksUri ${uri}: only http:// to a Service in the mesh is fetched (the mesh encrypts it); ${url.protocol} is not`));
  const port = Number(url.port || 80);
  const service = serviceOf(state, url.hostname, port);
  if (!service) return Promise.reject(new JwksUnreachable(`jwksUri ${uri}: ${url.hostname}:${port} is not a Service port of the cluster (the waypoint fetches keys from in-mesh Services only)`));
  const ep = destinations.choose(service, port, noAffinity)?.endpoint;
  if (!ep) return Promise.reject(new JwksUnreachable(`jwksUri ${uri}: no ready endpoint of ${service.namespace}/${service.name}:${port}`));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ep.ip, port: ep.port, path: `${url.pathname}${url.search}`, headers: { host: url.host, accept: 'application/json' }, agent: upstreams.agent(ep), signal, timeout: 5000 });
    req.on('timeout', () => req.destroy(new JwksUnreachable(`jwksUri ${uri}: no answer in 5 s`)));
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new JwksUnreachable(`jwksUri ${uri} answered ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return void res.destroy(new JwksUnreachable(`jwksUri ${uri}: the document passes ${maxBytes} bytes`));
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.end();
  });
}

/** The Service a host names: `name.ns.svc.cluster.local`, `name.ns.svc`, `name.ns`, or a ClusterIP. */
function serviceOf(state: WaypointState, host: string, port: number) {
  const byIp = state.serviceAt(host, port);
  if (byIp) return byIp;
  const parts = host.split('.');
  if (parts.length < 2) return undefined;
  const rest = parts.slice(2).join('.');
  if (rest !== '' && rest !== 'svc' && !rest.startsWith('svc.')) return undefined;
  const s = state.service(parts[1]!, parts[0]!);
  return s?.ports.some((p) => p.port === port) ? s : undefined;
}
