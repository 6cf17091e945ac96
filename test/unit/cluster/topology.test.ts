// The cluster file and the names and addresses derived from it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultClusterFile, layout, readClusterFile } from '../../../cluster/topology.js';

test('the default cluster has two nodes, each with a /24 of the pod block', () => {
  const t = layout(defaultClusterFile());
  assert.equal(
    t.nodes.map((n) => [n.name, n.ip, n.podCIDR.text, n.gateway, n.netns]),
    [
      ['node-1', '10.250.0.1', '10.244.1.0/24', '10.244.1.1', 'ambit-node-node-1'],
      ['node-2', '10.250.0.2', '10.244.2.0/24', '10.244.2.1', 'ambit-node-node-2'],
    ],
  );
});

test('overlapping address blocks are refused by name', () => {
  assert.throws(() => layout({ apiVersion: 'ambit.dev/v1alpha1', kind: 'Cluster', spec: { serviceCIDR: '10.244.128.0/17' } }), /spec.podCIDR 10.244.0.0\/16 overlaps spec.serviceCIDR/);
});

test('a cluster file with an unknown field or a bad node count is refused with the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-topo-'));
  try {
    const f = join(dir, 'c.yaml');
    writeFileSync(f, 'apiVersion: ambit.dev/v1alpha1\nkind: Cluster\nspec:\n  nodez: 3\n');
    assert.throws(() => readClusterFile(f), /spec.nodez is not a known field/);
    writeFileSync(f, 'apiVersion: ambit.dev/v1alpha1\nkind: Cluster\nspec:\n  nodes: [a, b, c]\n');
    assert.equal(layout(readClusterFile(f)).nodes.map((n) => n.name), ['a', 'b', 'c']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test.run();
