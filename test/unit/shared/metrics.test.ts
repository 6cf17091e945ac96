// What every ambit Prometheus endpoint carries: Istio's istio_build with the package's version, and
// nothing promtool's linter rejects.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { registerDefaultMetrics } from '../../../shared/metrics.js';
import { fileURLToPath } from 'node:url';

const packageJson = fileURLToPath(new URL('../../../../package.json', import.meta.url));

test('istio_build names the component and the version of package.json; promtool finds nothing to fix', async () => {
  const registry = new Registry();
  registerDefaultMetrics(registry, 'ambit_agent_', 'ambit-agent');
  const text = await registry.metrics();
  const version = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
  assert.match(text, `istio_build{component="ambit-agent",tag="${version}"} 1`);
  const lint = execFileSync('sh', ['-c', 'promtool check metrics 2>&1; true'], { input: text, encoding: 'utf8' });
  assert.is(lint.trim(), '');
});

test.run();
