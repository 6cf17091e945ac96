// The controller process: the resource store, the API the CLI talks to and, for the local
// cluster, the embedded runtime that runs its pods. Later: the CA and the push to agents.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createLogger } from '../shared/log.js';
import { AmbitError } from '../shared/errors.js';
import { parseCidr } from '../shared/net/ipv4.js';
import { Store, writeFileAtomic } from './store/store.js';
import { ClusterIPAllocator } from './resources/allocator.js';
import { createApiServer } from './api/server.js';
import { type ControllerConfig, storeDir, tokenPath } from './config.js';
import { LocalClusterRuntime } from '../scripts/cluster/runtime.js';
import { readState, topologyOf } from '../scripts/cluster/state.js';
import { clusterStatus } from '../scripts/cluster/status.js';

export async function runController(config: ControllerConfig): Promise<void> {
  const log = createLogger('controller', config.logLevel);
  const store = new Store(storeDir(config.stateDir));
  const token = loadOrCreateToken(config.stateDir);
  // The namespace every cluster starts with.
  if (!store.get('Namespace', '', 'default')) {
    store.commit([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'default' } },
    ]);
  }

  let runtime: LocalClusterRuntime | undefined;
  let status: (() => unknown) | undefined;
  let nodeNames: string[] | undefined;
  let serviceCIDR = parseCidr(config.serviceCIDR);
  if (config.localCluster) {
    const state = readState(config.stateDir);
    if (!state) throw new AmbitError('NoCluster', `no local cluster recorded in ${config.stateDir}; run \`ambit up\``);
    const topology = topologyOf(state);
    serviceCIDR = topology.serviceCIDR;
    nodeNames = topology.nodes.map((n) => n.name);
    runtime = new LocalClusterRuntime({ store, topology, stateDir: config.stateDir, binDir: config.binDir, log: log.child({ component: 'runtime' }) });
    runtime.start();
    status = () => clusterStatus(topology, store);
  }

  const ctx = { store, allocator: new ClusterIPAllocator(serviceCIDR), ...(nodeNames ? { nodeNames } : {}) };
  const server = createApiServer({ ctx, token, log: log.child({ component: 'api' }), ...(status ? { status } : {}) });
  server.listen(config.apiPort, config.apiHost);
  await once(server, 'listening');
  log.info({ api: `${config.apiHost}:${config.apiPort}`, revision: store.currentRevision, localCluster: config.localCluster }, 'controller ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'controller stopping; pods keep running');
    server.close();
    server.closeAllConnections();
    await runtime?.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

function loadOrCreateToken(stateDir: string): string {
  const path = tokenPath(stateDir);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(path, token, 0o600);
  return token;
}
