// Shared by the upstream tests: endpoints, a request the balancer can read, and a fake clock.

import type { PickRequest } from '../../../waypoint/upstream/balancer.js';
import type { Endpoint } from '../../../waypoint/upstream/types.js';

export function endpoints(n: number, nodes = ['node-1']): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`, node: nodes[i % nodes.length]!, port: 8080 }));
}

export function request(r: { headers?: Record<string, string>; cookies?: Record<string, string>; query?: Record<string, string>; sourceIp?: string; clientNode?: string } = {}): PickRequest {
  return {
    header: (name) => r.headers?.[name],
    cookie: (name) => r.cookies?.[name],
    queryParameter: (name) => r.query?.[name],
    ...(r.sourceIp !== undefined ? { sourceIp: r.sourceIp } : {}),
    ...(r.clientNode !== undefined ? { clientNode: r.clientNode } : {}),
  };
}

export class FakeClock {
  now = 1_000_000;
  readonly read = () => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}
