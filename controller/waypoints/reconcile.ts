// How the controller's reconcilers follow the cluster: a pass now, then one after every change that
// concerns them, several changes in one tick making one pass, and never two passes at once (a
// change during a pass makes one more after it). A pass's own writes come back as changes and
// schedule one more, which finds nothing to do; a pass that fails is logged and the next change
// tries again.

import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import type { Resource } from '../../shared/resources/types.js';
import type { ClusterView } from '../kube/view.js';

/** Starts following; returns the stop. */
export function followChanges(view: ClusterView, concerns: (r: Resource) => boolean, pass: () => Promise<void> | void, log: Logger, what: string): () => void {
  let scheduled = false;
  let running = false;
  let again = false;
  let stopped = false;
  const run = async () => {
    scheduled = false;
    if (stopped) return;
    running = true;
    try {
      await pass();
    } catch (err) {
      log.error({ err: errorMessage(err) }, `${what} failed`);
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      schedule();
    }
  };
  const schedule = () => {
    if (running) {
      again = true;
      return;
    }
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => void run());
  };
  const onChange = (event: { changes: { resource: Resource }[] }) => {
    if (!stopped && event.changes.some((c) => concerns(c.resource))) schedule();
  };
  view.on('change', onChange);
  schedule();
  return () => {
    stopped = true;
    view.off('change', onChange);
  };
}
