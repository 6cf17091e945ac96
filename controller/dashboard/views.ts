// What the dashboard's panels show besides the topology, as JSON: each node's agent (the push
// channel's view and the agent's own answer), the mesh's policies with their status and whether
// every agent runs them yet, the certificates (the CA's roots and each agent's workload certificates,
// with expiry), and the workloads the cluster runs. Read from the controller's own parts and, for
// what only agents know, their query API; nothing here changes anything.

import { X509Certificate } from 'node:crypto';
import { errorMessage } from '../../shared/errors.js';
import { isEnrolled } from '../../shared/enrollment.js';
import type { Pod, Resource } from '../../shared/resources/types.js';
import type { AgentStatus } from '../push/server.js';
import type { ClusterReader, RevisionedReader } from '../kube/view.js';
import type { AgentQuery } from './agent-link.js';
import type { KnownWorkload } from './topology.js';
import { podOwner } from '../../shared/resources/owners.js';

export interface ViewSources {
  /** The cluster as the controller's informers see it, and the revision agents should run. */
  cluster: RevisionedReader;
  /** The push channel's view of every agent the controller expects. */
  agents: () => AgentStatus[];
  query: AgentQuery;
  /** The CA's roots (current and, during a rotation, previous), PEM. */
  trustBundle: () => string[];
}

export type Health = 'healthy' | 'degraded' | 'down';

export interface AgentView extends AgentStatus {
  revision: number;
  inSync: boolean;
  /** What the agent itself says over its query API. */
  queryApi: { reachable: boolean; version?: number; controllerConnected?: boolean; error?: string };
  health: Health;
  /** Why it is not healthy, in words. */
  problems: string[];
}

export async function agentsView(s: ViewSources): Promise<{ revision: number; agents: AgentView[] }> {
  const revision = s.cluster.revision;
  const agents = await Promise.all(
    s.agents().map(async (a): Promise<AgentView> => {
      let queryApi: AgentView['queryApi'];
      try {
        const v = (await s.query.call(a.node, 'version')) as { version: number; controller: { connected: boolean } };
        queryApi = { reachable: true, version: v.version, controllerConnected: v.controller.connected };
      } catch (err) {
        queryApi = { reachable: false, error: errorMessage(err) };
      }
      const problems: string[] = [];
      if (!a.connected) problems.push(`not connected to the controller${a.disconnectedAt ? ` since ${a.disconnectedAt}` : ''}`);
      if (a.connected && a.ackedVersion < revision) problems.push(`runs revision ${a.ackedVersion}, the controller has ${revision}`);
      if (a.lastNack && a.lastNack.version > a.ackedVersion) problems.push(`rejected revision ${a.lastNack.version}: ${a.lastNack.reason}`);
      if (!queryApi.reachable) problems.push(`query API: ${queryApi.error}`);
      const health: Health = !a.connected && !queryApi.reachable ? 'down' : problems.length ? 'degraded' : 'healthy';
      return { ...a, revision, inSync: a.connected && a.ackedVersion >= revision, queryApi, health, problems };
    }),
  );
  return { revision, agents };
}

const policyKinds = ['AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication'];

export interface PolicyView {
  kind: string;
  namespace: string;
  name: string;
  /** ALLOW, DENY, AUDIT, CUSTOM for AuthorizationPolicy; the mTLS mode for PeerAuthentication. */
  action: string;
  revision: number;
  enforcedBy?: string;
  warnings: string[];
  /** Agents that run this policy's revision or a later one, of the connected agents. */
  inForce: { agents: number; of: number; waiting: string[] };
  spec: unknown;
}

export function policiesView(s: Pick<ViewSources, 'cluster' | 'agents'>): { revision: number; policies: PolicyView[] } {
  const connected = s.agents().filter((a) => a.connected);
  const policies = policyKinds.flatMap((kind) =>
    s.cluster.list(kind).map((r: Resource): PolicyView => {
      const spec = (r.spec ?? {}) as { action?: string; mtls?: { mode?: string } };
      const status = (r.status ?? {}) as { enforcedBy?: string; warnings?: string[] };
      const revision = Number(r.metadata.resourceVersion ?? 0);
      const waiting = connected.filter((a) => a.ackedVersion < revision).map((a) => a.node);
      return {
        kind,
        namespace: r.metadata.namespace ?? '',
        name: r.metadata.name,
        action: kind === 'AuthorizationPolicy' ? (spec.action ?? 'ALLOW') : kind === 'PeerAuthentication' ? (spec.mtls?.mode ?? 'UNSET') : '-',
        revision,
        ...(status.enforcedBy ? { enforcedBy: status.enforcedBy } : {}),
        warnings: status.warnings ?? [],
        inForce: { agents: connected.length - waiting.length, of: connected.length, waiting },
        spec: r.spec,
      };
    }),
  );
  return { revision: s.cluster.revision, policies };
}

export interface CertificateView {
  subject: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  expiresInSeconds: number;
  fingerprint256: string;
}

export interface WorkloadCertificateView {
  node: string;
  identity: string;
  state?: string;
  serial?: string;
  notAfter?: string;
  expiresInSeconds?: number;
  lastError?: string;
}

export async function certificatesView(s: ViewSources): Promise<{ roots: CertificateView[]; workloads: WorkloadCertificateView[]; errors: { node: string; message: string }[] }> {
  const now = Date.now();
  const roots = s.trustBundle().map((pem) => {
    const x = new X509Certificate(pem);
    return {
      subject: x.subject.replace(/\n/g, ', '),
      serial: x.serialNumber,
      notBefore: new Date(x.validFrom).toISOString(),
      notAfter: new Date(x.validTo).toISOString(),
      expiresInSeconds: Math.round((Date.parse(x.validTo) - now) / 1000),
      fingerprint256: x.fingerprint256,
    };
  });
  const errors: { node: string; message: string }[] = [];
  const perNode = await Promise.all(
    s.agents().map(async (a) => {
      try {
        const certs = (await s.query.call(a.node, 'certs')) as Omit<WorkloadCertificateView, 'node'>[];
        return certs.map((c) => ({ node: a.node, identity: c.identity, state: c.state, serial: c.serial, notAfter: c.notAfter, expiresInSeconds: c.expiresInSeconds, ...(c.lastError ? { lastError: c.lastError } : {}) }));
      } catch (err) {
        errors.push({ node: a.node, message: errorMessage(err) });
        return [];
      }
    }),
  );
  return { roots, workloads: perNode.flat(), errors };
}

/** The workloads the cluster runs (Deployments, and pods of no Deployment), and whether each is in the mesh. */
export function knownWorkloads(store: ClusterReader): KnownWorkload[] {
  const namespaces = new Map(store.list('Namespace').map((n) => [n.metadata.name, n.metadata.labels]));
  const seen = new Map<string, KnownWorkload>();
  for (const p of store.list('Pod') as Pod[]) {
    const ns = p.metadata.namespace ?? 'default';
    const owner = podOwner(p);
    // Istio's workload name: the Deployment's when there is one (as the agents' metrics label it).
    const name = owner?.split('/')[1] ?? p.metadata.name;
    const key = `${ns}/${name}`;
    const inMesh = isEnrolled(namespaces.get(ns), p.metadata.labels);
    const prev = seen.get(key);
    seen.set(key, { namespace: ns, name, inMesh: (prev?.inMesh ?? false) || inMesh });
  }
  return [...seen.values()];
}
