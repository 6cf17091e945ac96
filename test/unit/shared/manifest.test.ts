// Reading manifests: YAML that parses but cannot be turned into values (an alias to no anchor, an
// alias bomb) is a problem with the file and line, never an exception out of the reader.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FieldProblem } from '../../../shared/errors.js';
import { parseManifest } from '../../../shared/resources/manifest.js';

test('an alias to an anchor that is not set is a problem naming the document, not a thrown ReferenceError', () => {
  const problems: FieldProblem[] = [];
  const docs = parseManifest('apiVersion: v1\nkind: Namespace\nmetadata: { name: ok }\n---\napiVersion: v1\nkind: Namespace\nmetadata: { name: *missing }\n', 'ns.yaml', problems);
  assert.equal(docs.map((d) => (d.value as { metadata: { name: string } }).metadata.name), ['ok']);
  assert.is(problems.length, 1);
  assert.equal([problems[0]!.file, problems[0]!.line, problems[0]!.resource], ['ns.yaml', 5, 'YAML']);
  assert.match(problems[0]!.message, /alias/i);
});

test('an alias bomb is refused as a problem rather than expanded', () => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 12; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
  const problems: FieldProblem[] = [];
  assert.equal(parseManifest(lines.join('\n'), 'bomb.yaml', problems), []);
  assert.is(problems.length, 1);
});

test.run();
