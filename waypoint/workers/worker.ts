// A waypoint worker thread: a data path of its own (data-path.ts) on copies of the main thread's
// certificate and configuration snapshots, with its own listener on 15008. Its access lines go to
// the main thread's access log (one writer on stdout, so lines from several threads never
// interleave), a turn's lines in one message; its metrics are read by the main thread at each scrape.

import { EventEmitter } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { createTracer } from '../../shared/telemetry/tracing.js';
import type { WaypointSnapshot } from '../../shared/waypoint/config.js';
import { certificateFrom, type WaypointCertificate } from '../agent-link.js';
import { createDataPath, type WaypointSource } from '../data-path.js';
import { AccessLog } from '../telemetry/access-log.js';
import type { LineDestination } from '../telemetry/line-buffer.js';
import { WaypointMetrics } from '../telemetry/metrics.js';
import { SharedCounters } from '../upstream/shared-counters.js';
import type { FromWorker, ToWorker, WorkerSetup } from './protocol.js';

const { config, index, shared: buffer } = workerData as WorkerSetup;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const log = createLogger('waypoint', config.logLevel).child({ waypoint: `${config.namespace}/${config.gateway}`, pod: config.podName, worker: index });

class Source extends EventEmitter<{ snapshot: [WaypointSnapshot]; certificate: [WaypointCertificate] }> implements WaypointSource {
  certificate: WaypointCertificate | undefined;
}
const source = new Source();

/** The access log's stream here: each write (a turn's lines) goes to the main thread's access log. */
const toMain: LineDestination = {
  write(text) {
    send({ type: 'access', text });
    return true;
  },
  end() {
    queueMicrotask(() => ends.emit('finish'));
  },
  once(event, listener) {
    ends.once(event, listener);
  },
};
const ends = new EventEmitter();
const access = new AccessLog(toMain, { trustDomain: config.trustDomain });
// The process's own metrics (CPU, memory, event loop) are the main thread's to report.
const metrics = new WaypointMetrics({ cluster: config.clusterName, trustDomain: config.trustDomain, thread: index, processMetrics: false });
const tracer = await createTracer({ ...(config.otlpTracesEndpoint ? { endpoint: config.otlpTracesEndpoint } : {}), serviceName: `${config.gateway}.${config.namespace}`, namespace: config.namespace });
const shared = new SharedCounters({ buffer });
metrics.watchShared(shared, false);
const path = createDataPath({ config, source, log, access, metrics, tracer, shared });

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'snapshot':
      source.emit('snapshot', m.snapshot);
      return send({ type: 'applied', version: m.snapshot.version });
    case 'certificate': {
      const c = certificateFrom(m.certificate);
      source.certificate = c;
      return void source.emit('certificate', c);
    }
    case 'listen':
      return void path.listen().then(
        () => send({ type: 'listening' }),
        (err: unknown) => {
          log.fatal({ err: errorMessage(err) }, 'waypoint worker could not listen on 15008');
          process.exit(1);
        },
      );
    case 'metrics':
      return void metrics.registry.getMetricsAsJSON().then((values) => send({ type: 'metrics', id: m.id, metrics: values }));
    case 'stop':
      return void (async () => {
        await path.close(m.graceMs);
        await tracer.shutdown();
        await access.close();
        send({ type: 'stopped' });
      })();
  }
});
