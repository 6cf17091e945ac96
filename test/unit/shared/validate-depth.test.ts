// Validation refuses a resource nested thousands of levels deep (the controller's API reads such
// JSON fine) with a problem, instead of overflowing the stack while describing it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateResources } from '../../../shared/resources/validate.js';

test('a resource nested 20,000 levels deep is a problem, not a RangeError', () => {
  let kind: unknown = 'Namespace';
  for (let i = 0; i < 20_000; i++) kind = [kind];
  const problems = validateResources([{ apiVersion: 'v1', kind, metadata: { name: 'x' } }]);
  assert.equal(problems.map((p) => [p.index, p.field, p.message]), [[0, '', 'is nested deeper than 64 levels']]);
});

test('ordinary nesting passes the depth check', () => {
  assert.equal(validateResources([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { a: 'b' } } }]), []);
});

test.run();
