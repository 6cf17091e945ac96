// Opening a server's port, possibly in another network namespace than this process's: the local
// cluster's controller runs in the control plane's namespace, yet its dashboard and the cluster's
// Kubernetes API belong on the host's 127.0.0.1. The socket is made there through native/netns.ts
// and handed to Node as a descriptor, bound before Node sees it, so nothing a tick later can land
// in the wrong namespace. A namespace inherited as a descriptor is closed once every listener that
// needed it is open (releaseInheritedNetns), so no child process inherits a way into the host's.

import { once } from 'node:events';
import type { Server } from 'node:net';
import { AmbitError } from '../errors.js';
import { closeFd, listenerIn, NativeCallFailed, openNetns } from '../../native/netns.js';

export interface ListenAddress {
  host: string;
  port: number;
  /** A network namespace file to listen in (`/run/netns/X`, `/proc/self/fd/3`); this process's own when absent. */
  netns?: string;
}

/** Opens `server` on `at`; `what` names it in errors ("the dashboard", "the Kubernetes API"). */
export async function listenAt(server: Server, at: ListenAddress, what: string, flag: string): Promise<void> {
  const where = `${at.host}:${at.port}${at.netns ? ` (in ${at.netns})` : ''}`;
  try {
    if (at.netns) {
      const ns = openNetns(at.netns);
      let fd: number;
      try {
        fd = listenerIn(ns, at.host, at.port, { reuseAddress: true });
      } finally {
        closeFd(ns);
      }
      server.listen({ fd });
    } else {
      server.listen(at.port, at.host);
    }
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // 98: EADDRINUSE from bind() when the socket was made through native/.
    if (e.code === 'EADDRINUSE' || (err instanceof NativeCallFailed && err.errno === 98)) {
      throw new AmbitError('PortInUse', `${what}'s port ${where} is taken (another cluster's?); pass ${flag} HOST:PORT, or ${flag} off`);
    }
    throw new AmbitError('ListenFailed', `cannot open ${what} on ${where}: ${e.message}`);
  }
}

/**
 * A namespace handed down as an inherited descriptor (`/proc/self/fd/N`, see cluster/up.ts) is
 * closed once used, or when nothing listens there: it has no close-on-exec flag, and the pods and
 * agents this process starts must not inherit a way into the host's namespace.
 */
export function releaseInheritedNetns(path: string | undefined): void {
  const m = /^\/proc\/self\/fd\/(\d+)$/.exec(path ?? '');
  if (!m) return;
  try {
    closeFd(Number(m[1]));
  } catch {
    // Already closed.
  }
}
