// The local cluster's Prometheus configuration: Prometheus's own checker accepts it, and it scrapes
// every node's agent and the controller.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { layout } from '../../../cluster/topology.js';
import { prometheusConfig } from '../../../cluster/prometheus.js';

const threeNodes = layout({ apiVersion: 'ambit.dev/v1alpha1', kind: 'Cluster', metadata: { name: 'lab' }, spec: { nodes: 3 } });

test('promtool accepts the scrape configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-prom-'));
  try {
    const file = join(dir, 'prometheus.yml');
    writeFileSync(file, prometheusConfig(threeNodes));
    const out = execFileSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
    assert.match(out, /SUCCESS/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every agent is scraped at its node address, labelled with the node, and the controller too', () => {
  const config = parse(prometheusConfig(threeNodes)) as { global: { external_labels: Record<string, string> }; scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[] };
  const agents = config.scrape_configs.find((j) => j.job_name === 'ambit-agent')!;
  assert.equal(agents.static_configs.map((s) => [s.targets, s.labels?.node]), [
    [['10.250.0.1:15020'], 'node-1'],
    [['10.250.0.2:15020'], 'node-2'],
    [['10.250.0.3:15020'], 'node-3'],
  ]);
  const controller = config.scrape_configs.find((j) => j.job_name === 'ambit-controller')!;
  assert.equal(controller.static_configs[0]!.targets, [`${threeNodes.control.ip}:15014`]);
  assert.equal(config.global.external_labels.cluster, 'lab');
});

test('a cluster file can turn Prometheus off; it is on by default', () => {
  assert.is(threeNodes.prometheus, true);
  assert.is(layout({ apiVersion: 'ambit.dev/v1alpha1', kind: 'Cluster', spec: { prometheus: false } }).prometheus, false);
});

test.run();
