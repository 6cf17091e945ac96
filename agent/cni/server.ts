// The agent's end of the CNI plugin: a Unix socket (owner-only) that the plugin asks on every ADD
// and DEL. An ADD registers the pod with discovery and is answered only once the pod is captured
// (or is not to be captured), or refused: the runtime then fails the sandbox and the kubelet tries
// again, so an enrolled pod's containers never start uncaptured. Enrolment is decided from what the
// controller pushed; a pod it has not pushed yet is waited for, up to the plugin's timeout.
// Beside the socket the server keeps the list of enrolled namespaces that the plugin reads when it
// cannot ask (protocol.ts).

import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { isEnrolled } from '../../shared/enrollment.js';
import { writeFileAtomic } from '../../shared/host/files.js';
import { workloadKey } from '../../shared/protocol/config.js';
import type { AgentState } from '../state/state.js';
import type { CaptureManager } from '../capture/manager.js';
import type { PodDiscovery } from '../discovery/pods.js';
import { accepted, cniError, CniRequestInvalid, type CniPod, type CniRequest, enrolledNamespacesPath, parseRequest, podOf, refused } from './protocol.js';

export interface CniServerOptions {
  /** The Unix socket's path (the plugin's `socket`). */
  socket: string;
  state: AgentState;
  discovery: PodDiscovery;
  capture: Pick<CaptureManager, 'wants' | 'capturedPod'>;
  log: Logger;
}

/** Largest request read: the network configuration with its prevResult is a few kilobytes. */
const maxRequestBytes = 1024 * 1024;
/** A plugin sends its whole request at once; a connection that does not is dropped. */
const requestReadMs = 10_000;

type Verdict = { reply: string } | { pending: string };

interface Waiter {
  check(): void;
  captureChanged(key: string, captured: boolean, error?: string): void;
  finish(reply: string): void;
}

export class CniServer {
  private server: Server | undefined;
  /** The socket file this server made (a successor replaces it during a handover). */
  private inode = -1;
  private readonly waiters = new Set<Waiter>();
  private enrolledText: string | undefined;
  private readonly onConfig = () => {
    this.writeEnrolledNamespaces();
    for (const w of [...this.waiters]) w.check();
  };

  constructor(private readonly o: CniServerOptions) {}

  get enrolledNamespacesFile(): string {
    return enrolledNamespacesPath(this.o.socket);
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.o.socket), { recursive: true, mode: 0o700 });
    // A previous agent's socket (or, during a handover, the running one's: new ADDs come here now).
    rmSync(this.o.socket, { force: true });
    const server = createServer({ allowHalfOpen: true }, (s) => this.onConnection(s));
    server.on('error', (err) => this.o.log.error({ socket: this.o.socket, err: err.message }, 'CNI socket error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.socket, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Only root (the plugin runs as root) may ask: a pod held or let go is the agent's to say.
    chmodSync(this.o.socket, 0o600);
    this.inode = statSync(this.o.socket).ino;
    this.server = server;
    this.o.state.on('config', this.onConfig);
    this.onConfig();
    this.o.log.info({ socket: this.o.socket }, 'listening for the CNI plugin');
  }

  /** The capture manager's news: a waiting ADD may now be answered. */
  captureChanged(key: string, captured: boolean, error?: string): void {
    for (const w of [...this.waiters]) w.captureChanged(key, captured, error);
  }

  /** Stops listening; ADDs still waiting are refused (the kubelet retries, reaching a successor). */
  async close(): Promise<void> {
    this.o.state.off('config', this.onConfig);
    for (const w of [...this.waiters]) w.finish(refused('1.0.0', cniError.tryAgainLater, 'the ambit agent is stopping; the pod will be tried again'));
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      if (statSync(this.o.socket).ino === this.inode) rmSync(this.o.socket, { force: true });
    } catch {
      // Gone already.
    }
    await closed;
  }

  private onConnection(socket: Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    socket.setTimeout(requestReadMs, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxRequestBytes) return socket.destroy();
      chunks.push(chunk);
    });
    socket.on('end', () => {
      socket.setTimeout(0);
      void this.answer(Buffer.concat(chunks)).then((reply) => {
        if (!socket.destroyed) socket.end(reply);
      });
    });
  }

  private async answer(data: Buffer): Promise<string> {
    let request: CniRequest;
    try {
      request = parseRequest(data);
    } catch (err) {
      const code = err instanceof CniRequestInvalid ? err.cniCode : cniError.decode;
      this.o.log.warn({ err: errorMessage(err) }, 'unreadable request from the CNI plugin');
      return refused('1.0.0', code, errorMessage(err));
    }
    try {
      switch (request.command) {
        case 'ADD':
          return await this.add(request);
        case 'DEL':
          return this.del(request);
        case 'CHECK':
          return accepted();
        default:
          return refused(request.cniVersion, cniError.invalidEnvironment, `unknown CNI_COMMAND ${JSON.stringify(request.command)}`);
      }
    } catch (err) {
      if (err instanceof CniRequestInvalid) return refused(request.cniVersion, err.cniCode, err.message);
      this.o.log.error({ command: request.command, err: errorMessage(err) }, 'CNI request failed');
      return refused(request.cniVersion, cniError.tryAgainLater, `the ambit agent failed on this request: ${errorMessage(err)}`);
    }
  }

  private async add(r: CniRequest): Promise<string> {
    const pod = podOf(r);
    const key = `${pod.namespace}/${pod.name}`;
    this.o.discovery.add({ ...pod, source: 'cni' });
    // Answered a little before the plugin gives up, so that it prints the agent's reason.
    const waitMs = Math.max(1000, r.timeoutMs - 1000);
    const started = performance.now();
    const excluded = Array.isArray(r.config.exclude_namespaces) && r.config.exclude_namespaces.includes(pod.namespace);
    const reply = await this.await(pod, waitMs, r.cniVersion, excluded);
    const ok = reply === accepted();
    this.o.log.info({ workload: key, uid: pod.uid, netns: pod.netns, ips: pod.ips, ms: Math.round(performance.now() - started), ...(ok ? {} : { refused: reply.slice(2).trim() }) }, ok ? 'CNI ADD answered' : 'CNI ADD refused');
    return reply;
  }

  private del(r: CniRequest): string {
    const a = r.args;
    const forgot = this.o.discovery.remove({ ...(a.K8S_POD_UID ? { uid: a.K8S_POD_UID } : {}), ...(a.K8S_POD_NAMESPACE ? { namespace: a.K8S_POD_NAMESPACE } : {}), ...(a.K8S_POD_NAME ? { name: a.K8S_POD_NAME } : {}), containerId: r.containerId });
    if (forgot) this.o.log.info({ workload: `${a.K8S_POD_NAMESPACE}/${a.K8S_POD_NAME}`, container: r.containerId }, 'CNI DEL: pod forgotten');
    return accepted();
  }

  /** Resolves with the answer once the verdict is known, or a refusal when `waitMs` has passed. */
  private await(pod: CniPod, waitMs: number, cniVersion: string, excluded: boolean): Promise<string> {
    return new Promise((resolve) => {
      let failure: string | undefined;
      let pending = '';
      const key = `${pod.namespace}/${pod.name}`;
      const waiter: Waiter = {
        check: () => {
          const v = this.verdict(pod, failure, cniVersion, excluded);
          if ('reply' in v) waiter.finish(v.reply);
          else pending = v.pending;
        },
        captureChanged: (k, captured, error) => {
          if (k !== key) return;
          if (!captured && error) failure = error;
          waiter.check();
        },
        finish: (reply) => {
          if (!this.waiters.delete(waiter)) return;
          clearTimeout(timer);
          resolve(reply);
        },
      };
      const timer = setTimeout(() => waiter.finish(refused(cniVersion, cniError.tryAgainLater, `pod ${key} held: ${pending} after ${Math.round(waitMs / 1000)} s; the kubelet will try again`)), waitMs);
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  private verdict(pod: CniPod, failure: string | undefined, cniVersion: string, excluded: boolean): Verdict {
    const key = `${pod.namespace}/${pod.name}`;
    const state = this.o.state;
    const ns = state.namespaces.get(`namespace/${pod.namespace}`);
    // The plugin's excluded namespaces (the control plane's among them) never wait for a controller
    // the agent has not heard from: that controller may be the very pod waiting. Once the agent
    // knows such a namespace is enrolled, its pods are captured like any other.
    if (excluded && (state.version === 0 || !ns)) return { reply: accepted() };
    if (state.version === 0) return { pending: 'the agent has no configuration from the controller yet' };
    const w = state.workloads.get(workloadKey(pod.namespace, pod.name));
    // The controller may still hold the pod of the same name before this one, or not have this one yet.
    if (!w || (pod.uid && w.uid && w.uid !== pod.uid) || w.node !== state.node) {
      // However its pod is labelled, a pod of a namespace out of the mesh is out of it too.
      if (ns && !isEnrolled(ns.labels, undefined)) return { reply: accepted() };
      return { pending: `the controller has not sent pod ${key}${pod.uid ? ` (uid ${pod.uid})` : ''} on node ${state.node} yet` };
    }
    if (!this.o.capture.wants(w)) return { reply: accepted() };
    const captured = this.o.capture.capturedPod(key);
    if (captured && captured.netns === pod.netns) return { reply: accepted() };
    if (failure) return { reply: refused(cniVersion, cniError.refused, `ambit could not capture pod ${key}, so it must not start: ${failure}`) };
    return { pending: `pod ${key} is not captured yet` };
  }

  /** The plugin's fallback when it cannot ask: which namespaces' pods must wait for the agent. */
  private writeEnrolledNamespaces(): void {
    const state = this.o.state;
    if (state.version === 0) return;
    const names = [...state.namespaces].filter(([, n]) => isEnrolled(n.labels, undefined)).map(([key]) => key.slice('namespace/'.length));
    const text = names
      .sort()
      .map((n) => `${n}\n`)
      .join('');
    if (text === this.enrolledText) return;
    try {
      writeFileAtomic(this.enrolledNamespacesFile, text, 0o644);
      this.enrolledText = text;
    } catch (err) {
      this.o.log.error({ file: this.enrolledNamespacesFile, err: errorMessage(err) }, 'cannot write the enrolled namespaces for the CNI plugin');
    }
  }
}
