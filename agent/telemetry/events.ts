// The data path's events as named channels (node:diagnostics_channel, as undici's
// lib/core/diagnostics.js): a proxied connection opened, closed, or denied. The proxy publishes the
// records it already holds, and only while someone listens (`hasSubscribers` is checked before any
// message is built); the query API and tests subscribe and shape what they show. Metrics and the
// access log do not go through here: they hang off the ConnectionTable's own callbacks.

import diagnostics_channel from 'node:diagnostics_channel';
import type { Decision } from '../../shared/policy/index.js';
import type { ConnectionInfo, TrackedConnection } from '../proxy/connections.js';

export interface ConnectionOpened {
  connection: TrackedConnection;
}

export interface ConnectionClosed {
  connection: TrackedConnection;
  durationMs: number;
  /** Why it ended, when not by a clean close: an error code, or a policy change's reason. */
  error?: string;
}

/** Why a connection was refused, as `ambit_connections_denied_total{reason}` counts it. */
export type DenialCode = 'policy' | 'policy-default' | 'mtls-strict' | 'source-address-not-of-peer' | 'policy-changed' | 'not-from-waypoint';

export interface ConnectionDenied {
  /** Who asked for what, as far as the agent knew when it refused. */
  connection: ConnectionInfo;
  decision: Decision;
  code: DenialCode;
}

/** A named channel whose messages have one type. */
export interface EventChannel<M> {
  readonly name: string;
  readonly hasSubscribers: boolean;
  publish(message: M): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: (message: M) => void): () => void;
}

function named<M>(name: string): EventChannel<M> {
  // Held here for the process's life: a channel object nobody references may be collected.
  const ch = diagnostics_channel.channel(name);
  return {
    name,
    get hasSubscribers() {
      return ch.hasSubscribers;
    },
    publish: (message) => ch.publish(message),
    subscribe(listener) {
      const l = (message: unknown) => listener(message as M);
      ch.subscribe(l);
      return () => void ch.unsubscribe(l);
    },
  };
}

export const connectionOpened = named<ConnectionOpened>('ambit:connection:opened');
export const connectionClosed = named<ConnectionClosed>('ambit:connection:closed');
export const connectionDenied = named<ConnectionDenied>('ambit:connection:denied');
