// A Kubernetes API server for tests: the real handler over a Store in a temporary directory, behind
// HTTPS on 127.0.0.1 with a certificate from a fresh CA, plus a raw HTTPS client, a watch reader and
// a kubeconfig for the real kubectl.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { ClusterIPAllocator } from '../../../controller/resources/allocator.js';
import type { ApplyContext } from '../../../controller/resources/apply.js';
import { Store } from '../../../controller/store/store.js';
import type { Deployment, EndpointSlice, Pod, ReplicaSet, Resource, Service } from '../../../shared/resources/types.js';
import { planDeployments } from '../../../cluster/controllers/deployments.js';
import { planEndpointSlices } from '../../../cluster/controllers/endpointslices.js';
import { planReplicaSets, podMetadataFor } from '../../../cluster/controllers/replicasets.js';
import { defaultClusterFile, layout } from '../../../cluster/topology.js';
import { type KubeApiHandler, type KubeApiOptions, kubeApiHandler, nodeObjects } from '../../../cluster/apiserver/server.js';
import { ApiError } from '../../../cluster/apiserver/errors.js';
import { installMeshCrds } from '../../../cluster/apiserver/mesh-crds.js';
import * as assert from 'uvu/assert';

export const token = 'test-admin-token';

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface CallOptions {
  body?: unknown;
  /** A raw body, sent as is. */
  raw?: string;
  contentType?: string;
  accept?: string;
  token?: string | null;
}

export interface TestApi {
  dir: string;
  port: number;
  store: Store;
  ctx: ApplyContext;
  api: KubeApiHandler;
  caPem: string;
  kubeconfig: string;
  call(method: string, path: string, o?: CallOptions): Promise<Reply>;
  watch(path: string, o?: CallOptions): Promise<WatchReader>;
  kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stops serving (open watches end, connections close), runs `whileDown`, then serves the same store on the same port again. */
  restart(whileDown?: () => void): Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  watch?: KubeApiOptions['watch'];
  events?: KubeApiOptions['events'];
}

export async function startApi(o: StartOptions = {}): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-kapi-'));
  const store = new Store(join(dir, 'store'));
  const topology = layout(defaultClusterFile());
  const ctx: ApplyContext = { store, allocator: new ClusterIPAllocator(topology.serviceCIDR), nodeNames: topology.nodes.map((n) => n.name) };
  const nodes = nodeObjects(topology);
  const handlerOptions = { store, apply: ctx, nodes: () => nodes, token, serviceAccounts: { keyFile: join(dir, 'sa-signer.key') }, log: pino({ level: 'silent' }), ...(o.watch ? { watch: o.watch } : {}), ...(o.events ? { events: o.events } : {}) };
  // As the local cluster does at start (cluster/apiserver/serve.ts).
  installMeshCrds(store);
  let api = kubeApiHandler(handlerOptions);
  const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
  const serving = ca.issueServing(['127.0.0.1'], ['localhost']);
  let port = 0;
  const handle = (req: IncomingMessage, res: ServerResponse) => api.handle(req, res);
  let server: Server = createServer({ key: serving.keyPem, cert: serving.certPem }, handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  const caPem = ca.rootPem;

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'ambit', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
      users: [{ name: 'admin', user: { token } }],
      contexts: [{ name: 'ambit', context: { cluster: 'ambit', user: 'admin', namespace: 'default' } }],
      'current-context': 'ambit',
    }),
  );

  const open = (method: string, path: string, c: CallOptions) => {
    const body = c.raw ?? (c.body !== undefined ? JSON.stringify(c.body) : undefined);
    const headers: Record<string, string> = {};
    if (c.token !== null) headers.authorization = `Bearer ${c.token ?? token}`;
    if (body !== undefined) {
      headers['content-type'] = c.contentType ?? 'application/json';
      // Node's client sends a DELETE body unframed unless told its length.
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    if (c.accept) headers.accept = c.accept;
    const req = request({ host: '127.0.0.1', port, method, path, headers, ca: caPem, agent: false });
    req.end(body);
    return req;
  };

  return {
    dir,
    port,
    store,
    ctx,
    get api() {
      return api;
    },
    caPem,
    kubeconfig,
    call: (method, path, c = {}) =>
      new Promise<Reply>((resolve, reject) => {
        const req = open(method, path, c);
        req.on('error', reject);
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode!, headers: res.headers, text, json });
          });
        });
      }),
    watch: (path, c = {}) =>
      new Promise<WatchReader>((resolve, reject) => {
        const req = open('GET', path, c);
        req.on('error', reject);
        req.on('response', (res) => resolve(new WatchReader(res, () => req.destroy())));
      }),
    kubectl: (...args) =>
      new Promise((resolve) => {
        // HOME and the cache in the temporary directory: no discovery cached from another run.
        execFile('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), ...args], { env: { ...process.env, HOME: dir, KUBECONFIG: kubeconfig }, timeout: 30_000 }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        });
      }),
    restart: async (whileDown) => {
      api.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      whileDown?.();
      // A new server keeps no watch history from the old one, as after an etcd compaction.
      api = kubeApiHandler(handlerOptions);
      server = createServer({ key: serving.keyPem, cert: serving.certPem }, handle);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    close: async () => {
      api.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WatchEvent {
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  object: any;
}

/** Reads a watch response as events, one JSON object a line. */
export class WatchReader {
  private buffer = '';
  private readonly events: WatchEvent[] = [];
  private waiting: (() => void) | undefined;
  ended = false;

  constructor(
    readonly res: IncomingMessage,
    readonly abort: () => void,
  ) {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      this.buffer += d;
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        this.events.push(JSON.parse(this.buffer.slice(0, i)) as WatchEvent);
        this.buffer = this.buffer.slice(i + 1);
      }
      this.waiting?.();
    });
    const end = () => {
      this.ended = true;
      this.waiting?.();
    };
    res.on('end', end);
    res.on('close', end);
  }

  /** The next event; fails after `ms` or when the stream ends first. */
  async next(ms = 3000): Promise<WatchEvent> {
    const deadline = Date.now() + ms;
    while (this.events.length === 0) {
      if (this.ended) throw new Error('the watch ended before the next event');
      if (Date.now() > deadline) throw new Error(`no watch event within ${ms} ms`);
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.events.shift()!;
  }

  /** Waits for the server to end the stream. */
  async end(ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`the watch did not end within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Events already received and not yet read. */
  get pending(): number {
    return this.events.length;
  }
}

export const ns = (name: string, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });

export function deployment(name: string, namespace = 'shop', replicas = 2) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'main', image: 'ambit/echo', command: ['sleep', '1000'] }] } } },
  };
}

export function service(name: string, namespace = 'shop') {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] } };
}

/**
 * A pod as the local runtime writes one (straight into the store: pods are not applied), of its
 * owner's ReplicaSet: store it with commitPods, which stores the ReplicaSet too.
 */
export function pod(name: string, owner: string, node: string, ip: string, phase: 'Pending' | 'Running' = 'Running', namespace = 'shop'): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    // Owned by its Deployment's ReplicaSet, as the local cluster's ReplicaSet controller makes pods.
    metadata: { name, namespace, labels: { app: owner, 'pod-template-hash': templateHash }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${owner}-${templateHash}`, uid: '', controller: true }] },
    spec: { nodeName: node, containers: [{ name: 'main', command: ['sleep', '1000'] }] },
    status: { phase, podIP: ip, hostIP: '10.250.0.1', restarts: 0, containerStatuses: [{ name: 'main', restartCount: 0, state: phase === 'Running' ? 'running' : 'waiting' }] },
  };
}

const templateHash = '5d8f7c';

/**
 * Stores `pods` with the ReplicaSets they name (`<owner>-5d8f7c`, one per owner, made if absent),
 * each pod's reference carrying its ReplicaSet's uid: a pod whose owner is absent is garbage.
 */
export function commitPods(store: Store, pods: Pod[]): void {
  for (const p of pods) {
    const owner = p.metadata.ownerReferences![0]!;
    let rs = store.get('ReplicaSet', p.metadata.namespace!, owner.name) as ReplicaSet | undefined;
    if (!rs) {
      const app = p.metadata.labels!.app!;
      const labels = { app, 'pod-template-hash': templateHash };
      const replicas = pods.filter((q) => q.metadata.ownerReferences?.[0]?.name === owner.name).length;
      store.commit([{ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: owner.name, namespace: p.metadata.namespace!, labels }, spec: { replicas, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: p.spec } } } as ReplicaSet]);
      rs = store.get('ReplicaSet', p.metadata.namespace!, owner.name) as ReplicaSet;
    }
    owner.uid = rs.metadata.uid!;
  }
  store.commit(pods);
}

export type { Resource };

/** The ApiError `fn` throws, checked for its code and reason. */
export function apiError(fn: () => unknown, code: number, reason: string): ApiError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ApiError);
    const e = err as ApiError;
    assert.is(e.code, code, `code of: ${e.message}`);
    assert.is(e.reason, reason, `reason of: ${e.message}`);
    return e;
  }
  assert.unreachable(`expected ApiError ${code} ${reason}, nothing was thrown`);
  throw new Error('unreachable');
}

let podsMade = 0;

/**
 * The local cluster's controllers, once, as its runtime runs them (Deployments, then ReplicaSets, then,
 * with `endpointSlices`, EndpointSlices); the runtime's place in starting pods is taken by storing each
 * new one Running on node-1 with its own address.
 */
export function reconcileControllers(store: Store, o: { endpointSlices?: boolean } = {}): void {
  const rollout = planDeployments(store.list('Deployment') as Deployment[], store.list('ReplicaSet') as ReplicaSet[], store.list('Pod') as Pod[]);
  store.commit(rollout.upserts, rollout.deletes);
  const plan = planReplicaSets(store.list('ReplicaSet') as ReplicaSet[], store.list('Pod') as Pod[]);
  const created = plan.wanted.map((rs): Pod => {
    const n = podsMade++;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: podMetadataFor(rs, `${rs.metadata.name}-${n}`),
      spec: { ...rs.spec.template.spec, nodeName: 'node-1' },
      status: { phase: 'Running', podIP: `10.244.${1 + Math.floor(n / 250)}.${10 + (n % 250)}`, hostIP: '10.250.0.1', restarts: 0, containerStatuses: [{ name: 'main', restartCount: 0, state: 'running' }] },
    };
  });
  store.commit([...plan.adopted, ...created], plan.doomed.map((p) => ({ kind: 'Pod', namespace: p.metadata.namespace!, name: p.metadata.name })));
  if (!o.endpointSlices) return;
  const slices = planEndpointSlices(store.list('Service') as Service[], store.list('Pod') as Pod[], store.list('EndpointSlice') as EndpointSlice[]);
  store.commit(slices.upserts, slices.deletes);
}
