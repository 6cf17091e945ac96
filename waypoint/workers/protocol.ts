// The messages between the waypoint's main thread and its worker threads. The main thread owns the
// link to the node agent (certificate, configuration), readiness on 15021 and the metrics on 15020;
// every thread, main included, runs a data path of its own with a listener on 15008 (SO_REUSEPORT:
// the kernel spreads the node proxies' HBONE connections over them).

import type { ThreadMetrics } from '../../shared/metrics.js';
import type { WaypointSnapshot } from '../../shared/waypoint/config.js';
import type { WaypointConfig } from '../config.js';

/** What a worker thread is started with (its workerData). */
export interface WorkerSetup {
  config: WaypointConfig;
  /** This worker's place: 1 to the workers' count - 1 (the main thread is 0). */
  index: number;
  /** The main thread's SharedCounters table. */
  shared: SharedArrayBuffer;
}

/** A certificate as it crosses threads: the PEMs its secure context is made from. */
export interface SharedWaypointCertificate {
  id: string;
  keyPem: string;
  chain: string[];
  trustBundle: string[];
  notAfter: string;
}

export type WorkerMetrics = ThreadMetrics;

export type ToWorker =
  | { type: 'snapshot'; snapshot: WaypointSnapshot }
  | { type: 'certificate'; certificate: SharedWaypointCertificate }
  | { type: 'listen' }
  | { type: 'metrics'; id: number }
  | { type: 'stop'; graceMs: number };

export type FromWorker =
  /** A turn's access lines, each ending with its newline. */
  | { type: 'access'; text: string }
  | { type: 'listening' }
  /** The configuration version the worker now routes by. */
  | { type: 'applied'; version: number }
  | { type: 'metrics'; id: number; metrics: WorkerMetrics }
  | { type: 'stopped' };
