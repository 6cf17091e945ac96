// Simulated agents for the push benchmark: a child process holding N agent connections to the
// controller under test. Each speaks the real protocol (TLS, token, full and delta pushes, version
// continuity, ack) and parses every push, but keeps no cluster state: on this 2-core machine, 100
// full agents would measure their own memory and garbage collection, not the controller's.
// `--full` runs the agent's real code (ControllerConnection and AgentState) instead.

import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { AgentState } from '../../agent/state/state.js';
import { ControllerConnection } from '../../agent/control/client.js';
import { nodeHeader, pushPath, type ConfigPush } from '../../shared/protocol/config.js';

interface Start {
  url: string;
  ca: string;
  full: boolean;
  agents: { node: string; token: string }[];
}

const log = pino({ level: 'silent' });
const stops: (() => void)[] = [];

function simulated(url: string, ca: string, node: string, token: string): () => void {
  let version = 0;
  const ws = new WebSocket(`${url}${pushPath}`, { ca, headers: { authorization: `Bearer ${token}`, [nodeHeader]: node }, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
  ws.on('message', (data, isBinary) => {
    const push = JSON.parse((isBinary ? gunzipSync(data as Buffer) : data).toString()) as ConfigPush;
    if (!push.full && push.from !== version) {
      ws.send(JSON.stringify({ type: 'resync', reason: `delta from ${push.from}, have ${version}` }));
      return;
    }
    version = push.to;
    ws.send(JSON.stringify({ type: 'ack', version }));
  });
  ws.on('error', (err) => process.stderr.write(`${node}: ${err.message}\n`));
  return () => ws.close();
}

process.on('message', (msg: { type: 'start'; start: Start } | { type: 'stop' }) => {
  if (msg.type === 'stop') {
    for (const stop of stops) stop();
    setTimeout(() => process.exit(0), 50);
    return;
  }
  const { url, ca, full } = msg.start;
  for (const a of msg.start.agents) {
    if (full) {
      const c = new ControllerConnection({ url: () => url, node: a.node, token: () => a.token, ca: () => [ca], state: new AgentState(a.node), log, minBackoffMs: 50, maxBackoffMs: 500 });
      c.start();
      stops.push(() => c.stop());
    } else stops.push(simulated(url, ca, a.node, a.token));
  }
  process.send?.({ type: 'started' });
});
process.send?.({ type: 'ready' });
