// An agent's view of the cluster as a first full push leaves it, for tests and fuzzers that need
// one without a controller: the entries in the wire form the controller sends.

import { AgentState } from '../../agent/state/state.js';
import type { WireEntry } from '../../shared/protocol/config.js';

export function stateWith(node: string, upserts: WireEntry[]): AgentState {
  const state = new AgentState(node);
  state.apply({ type: 'config', full: true, from: 0, to: 1, upserts, deletes: [] });
  return state;
}
