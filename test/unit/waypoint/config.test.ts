// What `ambit waypoint run` reads from its flags and its pod's environment: the event loops it runs
// (--workers, one by default), refused by name when not a whole number from 1 to 64, and the
// downward-API variables it cannot run without.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readWaypointConfig } from '../../../waypoint/config.js';
import { AmbitError } from '../../../shared/errors.js';

const pod = { POD_NAMESPACE: 'shop', POD_NAME: 'waypoint-abc', POD_IP: '10.244.1.9' };

test('one event loop by default, N with --workers N', () => {
  assert.is(readWaypointConfig({ gateway: 'waypoint' }, pod).workers, 1);
  assert.is(readWaypointConfig({ gateway: 'waypoint', workers: '4' }, pod).workers, 4);
});

test('--workers that is not a whole number from 1 to 64 is refused, naming the flag and the value', () => {
  for (const workers of ['0', '65', 'many', '2.5', '-1']) {
    assert.throws(
      () => readWaypointConfig({ gateway: 'waypoint', workers }, pod),
      (err: unknown) => err instanceof AmbitError && err.message === `--workers must be a whole number from 1 to 64 (the waypoint's event loops), not ${JSON.stringify(workers)}`,
    );
  }
});

test('outside a pod (no downward API) it says which variables are missing', () => {
  assert.throws(() => readWaypointConfig({ gateway: 'waypoint' }, { POD_NAME: 'x' }), /POD_NAMESPACE, POD_IP must be set/);
});

test.run();
