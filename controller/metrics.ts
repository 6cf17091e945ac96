// The controller's own metrics, in Prometheus text format on its monitoring port (15014, as
// istiod's): certificates issued and refused, agents connected, the store revision.

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { registerDefaultMetrics } from '../shared/metrics.js';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly certificatesIssued = new Counter({ name: 'ambit_ca_certificates_issued_total', help: 'Workload certificates signed by the CA', registers: [this.registry] });
  readonly csrRefused = new Counter({ name: 'ambit_ca_csr_refused_total', help: 'Certificate requests refused, by reason', labelNames: ['reason', 'node'], registers: [this.registry] });
  readonly agentsConnected = new Gauge({ name: 'ambit_controller_agents_connected', help: 'Node agents connected to the push channel', registers: [this.registry] });
  readonly revision = new Gauge({ name: 'ambit_controller_config_revision', help: 'The store revision', registers: [this.registry] });

  constructor() {
    registerDefaultMetrics(this.registry, 'ambit_controller_', 'ambit-controller');
  }

  serve(host: string, port: number): Server {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    server.listen(port, host);
    return server;
  }
}
