// The mesh controller is the code that ships to real clusters: it must not depend on the local
// cluster (cluster/), which embeds it through controller/local-cluster.ts and not the other way.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every import (static or dynamic) of `file` that points into `folder`, by its specifier. */
function importsInto(file: string, folder: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) {
    const spec = m[1]!;
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (!relative(folder, target).startsWith('..')) found.push(spec);
  }
  return found;
}

test('no module of controller/ imports anything of cluster/', () => {
  const cluster = join(root, 'cluster');
  const offenders = sources(join(root, 'controller')).flatMap((f) => importsInto(f, cluster).map((spec) => `${relative(root, f)} imports ${spec}`));
  assert.equal(offenders, []);
});

test('the check sees an import into cluster/ when there is one', () => {
  // cluster/serve.ts imports the controller, the allowed direction: the same check on it must find them.
  assert.ok(importsInto(join(root, 'cluster', 'serve.ts'), join(root, 'controller')).length > 0);
});

test.run();
