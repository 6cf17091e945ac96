// How the controller's waypoint reconcilers follow the store: a pass now, then one after every
// change that concerns them, several changes in one tick making one pass. A pass's own writes
// schedule one more, which finds nothing to do; a pass that throws is logged and the next change
// tries again.

import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import type { Resource } from '../../shared/resources/types.js';
import type { Store } from '../store/store.js';

/** Starts following; returns the stop. */
export function followStore(store: Store, concerns: (r: Resource) => boolean, pass: () => void, log: Logger, what: string): () => void {
  let scheduled = false;
  let stopped = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (stopped) return;
      try {
        pass();
      } catch (err) {
        log.error({ err: errorMessage(err) }, `${what} failed`);
      }
    });
  };
  const onChange = (event: { changes: { resource: Resource }[] }) => {
    if (!stopped && event.changes.some((c) => concerns(c.resource))) schedule();
  };
  store.on('change', onChange);
  schedule();
  return () => {
    stopped = true;
    store.off('change', onChange);
  };
}
