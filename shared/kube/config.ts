// Where a Kubernetes API server is and how to authenticate to it: from a kubeconfig file (the
// current context, or a named one) or, inside a pod, from the ServiceAccount files Kubernetes mounts
// (a token file that the kubelet rotates, so it is read again rather than once). What a request does
// with this is client.ts's.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { AmbitError } from '../errors.js';

export interface KubeConfig {
  /** `https://host:port`, without a trailing slash. */
  server: string;
  /** PEM roots to verify the server by; undefined means the system's. */
  ca?: string;
  /** A bearer token, read when a request is made (a rotating file is read again). */
  token?: () => string;
  /** Reads a token file again now (after a 401: the kubelet may have rotated it). */
  reloadToken?: () => void;
  /** A client certificate and key (PEM), as kind and kubeadm clusters give their admins. */
  cert?: string;
  key?: string;
  /** The namespace of the context, or the pod's own. */
  namespace: string;
  /** Where this came from, for messages. */
  source: string;
}

/** Kubernetes mounts these into every pod that automounts its ServiceAccount token. */
export const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export class KubeConfigError extends AmbitError {
  constructor(source: string, message: string) {
    super('KubeConfigInvalid', `${source}: ${message}`);
  }
}

/**
 * A rotating token file: read at most once a minute, as client-go does, and again at once on
 * demand (after a 401), so a token the kubelet replaced is picked up without a restart.
 */
export function tokenFile(path: string, now: () => number = Date.now): { token: () => string; reloadToken: () => void } {
  let token = '';
  let readAt = -Infinity;
  const read = () => {
    token = readFileSync(path, 'utf8').trim();
    readAt = now();
    return token;
  };
  return { token: () => (now() - readAt >= 60_000 ? read() : token), reloadToken: read };
}

/** In a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` and the mounted ServiceAccount files. */
export function inClusterConfig(env: NodeJS.ProcessEnv, dir = serviceAccountDir): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const source = 'in-cluster configuration';
  if (!host || !port) throw new KubeConfigError(source, 'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod; pass --kubeconfig');
  const file = tokenFile(`${dir}/token`);
  try {
    file.token();
  } catch (err) {
    throw new KubeConfigError(source, `cannot read the ServiceAccount token ${dir}/token (${(err as Error).message}); is automountServiceAccountToken off?`);
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(`${dir}/ca.crt`, 'utf8'),
    ...file,
    namespace: readOptional(`${dir}/namespace`)?.trim() || 'default',
    source,
  };
}

interface NamedCluster {
  name: string;
  cluster: { server?: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string; 'insecure-skip-tls-verify'?: boolean };
}
interface NamedUser {
  name: string;
  user: { token?: string; tokenFile?: string; 'client-certificate-data'?: string; 'client-key-data'?: string; 'client-certificate'?: string; 'client-key'?: string; exec?: unknown; 'auth-provider'?: unknown };
}
interface NamedContext {
  name: string;
  context: { cluster: string; user: string; namespace?: string };
}

/** Reads a kubeconfig file: its current context, or `context` when given. */
export function loadKubeconfig(path: string, context?: string): KubeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KubeConfigError(path, `cannot read the kubeconfig (${(err as Error).message})`);
  }
  let doc: { clusters?: NamedCluster[]; users?: NamedUser[]; contexts?: NamedContext[]; 'current-context'?: string };
  try {
    doc = (parse(text) ?? {}) as typeof doc;
  } catch (err) {
    throw new KubeConfigError(path, `not YAML (${(err as Error).message})`);
  }
  const name = context ?? doc['current-context'];
  if (!name) throw new KubeConfigError(path, 'no current-context, and no context named');
  const ctx = doc.contexts?.find((c) => c.name === name)?.context;
  if (!ctx) throw new KubeConfigError(path, `no context named ${JSON.stringify(name)}`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server) throw new KubeConfigError(path, `context ${JSON.stringify(name)}: no cluster ${JSON.stringify(ctx.cluster)} with a server`);
  if (cluster['insecure-skip-tls-verify']) throw new KubeConfigError(path, `cluster ${JSON.stringify(ctx.cluster)}: insecure-skip-tls-verify is not supported; give its certificate-authority`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user.exec || user['auth-provider']) throw new KubeConfigError(path, `user ${JSON.stringify(ctx.user)}: exec and auth-provider credentials are not supported; use a token or a client certificate`);
  const relative = (p: string) => (p.startsWith('/') ? p : `${path.slice(0, path.lastIndexOf('/') + 1)}${p}`);
  const pem = (data: string | undefined, file: string | undefined) => (data ? Buffer.from(data, 'base64').toString('utf8') : file ? readFileSync(relative(file), 'utf8') : undefined);
  const ca = pem(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = pem(user['client-certificate-data'], user['client-certificate']);
  const key = pem(user['client-key-data'], user['client-key']);
  const staticToken = user.token;
  const token = staticToken ? { token: () => staticToken } : user.tokenFile ? tokenFile(relative(user.tokenFile)) : undefined;
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...token,
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    namespace: ctx.namespace ?? 'default',
    source: path,
  };
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
