// `ambit query NODE WHAT`: asks a node agent over its WebSocket query API, like
// `istioctl ztunnel-config`. The API listens on the node's loopback, so the command re-runs itself
// inside the node's network namespace; `--address` and `--token-file` reach an agent elsewhere.
// `profile` and `heap` read the admin API's debug routes (query-debug.ts).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { AmbitError } from '../../shared/errors.js';
import { defaultAdminPort } from '../../agent/config.js';
import { readState, topologyOf } from '../../cluster/state.js';
import { cliEntry, type CliContext } from '../context.js';
import { outputFormat, printData, table, type OutputFormat } from '../output.js';
import { queryHeap, queryProfile } from './query-debug.js';

const methods = ['workloads', 'services', 'policies', 'certs', 'connections', 'workers', 'events', 'version', 'config_dump', 'profile', 'heap'];
/** Asked by other commands (`ambit explain`) with --params, not listed for people. */
const internalMethods = ['explain-outbound', 'explain-inbound', 'explain-waypoint'];

export async function query(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      follow: { type: 'boolean', short: 'f' },
      address: { type: 'string' },
      'token-file': { type: 'string' },
      'in-node': { type: 'boolean' },
      params: { type: 'string' },
      seconds: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const format = outputFormat(values.output);
  const [node, what] = positionals;
  if (!node || !what || !(methods.includes(what) || internalMethods.includes(what))) throw new AmbitError('BadArgs', `usage: ambit query NODE ${methods.join('|')} [-o json|yaml|wide] [--follow] [--seconds N] [--out DIR]`);
  if (values.follow && what !== 'events') throw new AmbitError('BadArgs', '--follow goes with events');
  if (values.seconds !== undefined && what !== 'profile') throw new AmbitError('BadArgs', '--seconds goes with profile');
  if (values.out !== undefined && what !== 'profile' && what !== 'heap') throw new AmbitError('BadArgs', '--out goes with profile and heap');
  const seconds = Number(values.seconds ?? '5');
  if (what === 'profile' && !(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60)) throw new AmbitError('BadArgs', `--seconds ${values.seconds}: a whole number of seconds from 1 to 60`);
  if (!values.address && !values['in-node']) return reenterNode(ctx, node, args);

  const token = values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : undefined;
  if (what === 'profile' || what === 'heap') {
    // The files are written by this process, inside the node's namespace but in the caller's directory.
    const debug = { node, address: values.address ?? `127.0.0.1:${defaultAdminPort}`, token, format, out: values.out };
    return what === 'profile' ? queryProfile(debug, seconds) : queryHeap(debug);
  }
  const ws = new WebSocket(`ws://${values.address ?? `127.0.0.1:${defaultAdminPort}`}/`, { headers: token ? { authorization: `Bearer ${token}` } : {}, handshakeTimeout: 5000 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new AmbitError('Unauthorized', `the agent refused the query (HTTP ${res.statusCode}); pass --token-file`)));
    ws.once('error', (err) => reject(new AmbitError('AgentUnreachable', `cannot reach the agent of ${node}: ${err.message}`)));
  });
  const call = (method: string, params?: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const id = Math.floor(Math.random() * 1e9);
      const onMessage = (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { code: string; message: string } };
        if (msg.id !== id) return;
        ws.off('message', onMessage);
        if (msg.error) reject(new AmbitError(msg.error.code, msg.error.message));
        else resolve(msg.result);
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id, method, ...(params ? { params } : {}) }));
    });

  const result = await call(what, values.params ? JSON.parse(values.params) : undefined);
  print(what, format, result);
  if (!values.follow) {
    ws.close();
    return 0;
  }
  await call('subscribe');
  ws.on('message', (data) => {
    const e = JSON.parse(data.toString()) as { topic?: string };
    if (e.topic) print('events', format, [e]);
  });
  return new Promise((resolve) => ws.on('close', () => resolve(0)));
}

function reenterNode(ctx: CliContext, node: string, args: string[]): Promise<number> {
  const state = readState(ctx.stateDir);
  if (!state) throw new AmbitError('NoCluster', 'no local cluster is up; pass --address HOST:PORT to query an agent elsewhere');
  const layout = topologyOf(state).nodes.find((n) => n.name === node);
  if (!layout) throw new AmbitError('NotFound', `node ${node} is not in the cluster (nodes: ${topologyOf(state).nodes.map((n) => n.name).join(', ')})`);
  const child = spawn('nsenter', [`--net=/run/netns/${layout.netns}`, '--', process.execPath, cliEntry, '--state-dir', ctx.stateDir, 'query', ...args, '--in-node'], { stdio: 'inherit' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

type Row = Record<string, unknown>;

function print(what: string, format: OutputFormat, result: unknown): void {
  if (printData(format, result)) return;
  const wide = format === 'wide';
  const rows = (Array.isArray(result) ? result : [result]) as Row[];
  const str = (v: unknown) => (v === undefined || v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const out = (headers: string[], cells: (r: Row) => unknown[]): void => void process.stdout.write(rows.length ? table(headers, rows.map((r) => cells(r).map(str))) : `No ${what}.\n`);
  switch (what) {
    case 'workloads':
      return out(['NAMESPACE', 'NAME', 'IP', 'NODE', 'SERVICE-ACCOUNT', 'ENROLLED', ...(wide ? ['OWNER', 'LABELS'] : [])], (w) => [
        w.namespace,
        w.name,
        w.ip,
        w.node,
        w.serviceAccount,
        w.local ? (w.enrolled ? 'yes' : 'no') : '-',
        ...(wide ? [w.owner, Object.entries(w.labels as Row).map(([k, v]) => `${k}=${String(v)}`).join(',')] : []),
      ]);
    case 'services':
      return out(['NAMESPACE', 'NAME', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'], (s) => [
        s.namespace,
        s.name,
        s.clusterIP,
        (s.ports as Row[]).map((p) => `${String(p.port)}->${String(p.targetPort)}`).join(','),
        (s.endpoints as Row[]).map((e) => `${String(e.ip)}`).join(',') || '<none>',
      ]);
    case 'policies':
      return out(['NAMESPACE', 'NAME', 'KIND', 'ACTION/MODE', ...(wide ? ['SPEC'] : [])], (p) => {
        const spec = (p.spec ?? {}) as Row;
        return [p.namespace, p.name, p.kind, spec.action ?? (spec.mtls as Row | undefined)?.mode ?? (p.kind === 'AuthorizationPolicy' ? 'ALLOW' : '-'), ...(wide ? [spec] : [])];
      });
    case 'certs':
      return out(['IDENTITY', 'STATE', 'SERIAL', 'NOT-AFTER', 'EXPIRES-IN', ...(wide ? ['FIRST-POD-TO-CERT', 'LAST-ERROR'] : [])], (c) => [
        c.identity,
        c.state,
        c.serial,
        c.notAfter,
        c.expiresInSeconds === undefined ? '-' : `${String(c.expiresInSeconds)}s`,
        ...(wide ? [c.firstPodToCertificateMs === undefined ? '-' : `${String(c.firstPodToCertificateMs)} ms`, c.lastError] : []),
      ]);
    case 'connections':
      return out(['WORKLOAD', 'DIRECTION', 'OPENED', 'CLOSED', 'FAILED', 'SENT', 'RECEIVED'], (c) => [c.workload, c.direction, c.opened, c.closed, c.failed, c.sent, c.received]);
    case 'workers':
      return out(['WORKER', 'OPEN', 'OPENED', 'SOCKETS', 'HEAP-MB'], (w) => [w.worker, w.open, w.opened, w.sockets, w.heapMB]);
    case 'events':
      return out(['TIME', 'TOPIC', 'DATA'], (e) => [e.time, e.topic, e.data]);
    default:
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  }
}

/** Calls a node agent's query API from another command and returns the result (JSON). */
export function callAgent(ctx: CliContext, node: string, method: string, params: unknown): Promise<unknown> {
  const state = readState(ctx.stateDir);
  if (!state) throw new AmbitError('NoCluster', 'no local cluster is up');
  const layout = topologyOf(state).nodes.find((n) => n.name === node);
  if (!layout) throw new AmbitError('NotFound', `node ${node} is not in the cluster`);
  const argv = ['--net=/run/netns/' + layout.netns, '--', process.execPath, cliEntry, '--state-dir', ctx.stateDir, 'query', node, method, '--params', JSON.stringify(params), '--in-node', '-o', 'json'];
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new AmbitError('AgentQueryFailed', `the agent of ${node}: ${err.trim() || `exit ${code}`}`))));
  });
}
