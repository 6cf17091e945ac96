// The API's answers, as the server declares them: one source of truth for both sides (type-only
// imports, which esbuild drops from the bundle).

export type { Topology, TopologyEdge, TopologyNode } from '../topology.js';
export type { AgentView, PolicyView, CertificateView, WorkloadCertificateView, Health } from '../views.js';
export type { ExplainResult } from '../../../shared/explain/explain.js';
export type { RelayedEvent, RelayState } from '../events.js';
export type { Estimate, Amount, Resources } from '../../../shared/estimate/index.js';
