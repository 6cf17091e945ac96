// What `ambit agents` and `apply --wait` show when the agents are spread over controller replicas:
// one line per node, from the replica it is connected to.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mergeAgents } from '../../../cli/controllers.js';
import type { AgentStatus } from '../../../controller/push/server.js';

const agent = (node: string, connected: boolean, extra: Partial<AgentStatus> = {}): AgentStatus => ({ node, connected, ackedVersion: 1, sentVersion: 1, ...extra });

test('a node connected to the second replica is shown connected there, though the first remembers it disconnected', () => {
  const merged = mergeAgents([
    { identity: 'a', agents: [agent('node-1', false, { disconnectedAt: '2026-12-02T10:00:00Z' }), agent('node-2', true)] },
    { identity: 'b', agents: [agent('node-1', true, { ackedVersion: 7 })] },
  ]);
  assert.equal(
    merged.map((a) => [a.node, a.connected, a.controller, a.ackedVersion]),
    [
      ['node-1', true, 'b', 7],
      ['node-2', true, 'a', 1],
    ],
  );
});

test('a node connected to no replica is shown with its latest disconnection', () => {
  const merged = mergeAgents([
    { identity: 'a', agents: [agent('node-1', false, { disconnectedAt: '2026-12-02T10:00:00Z', ackedVersion: 3 })] },
    { identity: 'b', agents: [agent('node-1', false, { disconnectedAt: '2026-12-02T11:00:00Z', ackedVersion: 5 })] },
  ]);
  assert.equal(merged.map((a) => [a.connected, a.controller, a.ackedVersion]), [[false, undefined, 5]]);
});

test.run();
