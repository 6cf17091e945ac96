// The messages between the agent's main thread and its worker threads. The main thread owns the
// controller connection, the certificates, capture and the query API; each worker thread runs a
// node proxy of its own on copies of the configuration and certificates, with listeners of its own
// in every captured pod and on 15008 (SO_REUSEPORT: the kernel spreads connections over them).

import type { HboneServerLimits } from '../../shared/hbone/server.js';
import type { ConfigPush, WorkloadEntry } from '../../shared/protocol/config.js';
import type { Topic } from '../api/events.js';
import type { DestinationSource } from '../capture/destinations.js';
import type { PodListeners } from '../capture/manager.js';
import type { SharedCertificate } from '../identity/set.js';

/** What a worker thread is started with (its workerData). */
export interface WorkerSetup {
  node: string;
  logLevel: string;
  trustDomain: string;
  rootNamespace: string;
  clusterName: string;
  hboneLimits: Partial<HboneServerLimits>;
  /** This worker's place: 1 to count - 1 (the main thread is 0). */
  index: number;
  count: number;
}

/** A captured pod as a worker thread takes it over: it opens the namespace itself, by path. */
export interface SharedPod {
  key: string;
  workload: WorkloadEntry;
  netns: string;
  how: 'installed' | 'adopted';
  source: DestinationSource;
}

/** Questions a worker thread answers with a `reply`. */
export type Question =
  | { ask: 'listen'; host: string }
  | { ask: 'size' }
  | { ask: 'holds'; workload: string }
  | { ask: 'counters'; workloads: string[] }
  | { ask: 'metrics' }
  | { ask: 'load' }
  | { ask: 'profile'; ms: number }
  | { ask: 'stop' };

export type ToWorker =
  | { type: 'push'; push: ConfigPush }
  | { type: 'certificate'; certificate: SharedCertificate }
  | { type: 'certificate-dropped'; id: string }
  | { type: 'capture'; pod: SharedPod; listeners: PodListeners }
  | { type: 'release'; key: string }
  | { type: 'drained'; key: string }
  | { type: 'stop-accepting'; graceMs: number }
  | { type: 'subscribe'; topic: Topic }
  | { type: 'unsubscribe'; topic: Topic }
  | { type: 'ask'; id: number; question: Question };

export type FromWorker = { type: 'ready' } | { type: 'reply'; id: number; value: unknown; error?: string } | { type: 'event'; topic: Topic; data: unknown };
