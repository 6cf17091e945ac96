// The JSONPath subset of CRD printer columns: fields, indexes, wildcards, quoted keys and equality
// filters, as kubectl's columns read them; what it cannot read is an error naming the place.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cellOf, parseJsonPath } from '../../../cluster/apiserver/json-path.js';

const gateway = {
  metadata: { name: 'waypoint', annotations: { 'ambit.dev/otlp': 'on' } },
  spec: { gatewayClassName: 'ambit-waypoint', listeners: [{ name: 'mesh', port: 15008 }, { name: 'http', port: 80 }] },
  status: { addresses: [{ value: '10.96.0.10' }, { value: '10.96.0.11' }], conditions: [{ type: 'Accepted', status: 'True' }, { type: 'Programmed', status: 'False' }] },
};
const cell = (path: string) => cellOf(parseJsonPath(path), gateway);

test('fields, indexes and wildcards read what kubectl prints; several values join with commas', () => {
  assert.is(cell('.spec.gatewayClassName'), 'ambit-waypoint');
  assert.is(cell('.spec.listeners[1].port'), 80);
  assert.is(cell('.status.addresses[*].value'), '10.96.0.10,10.96.0.11');
  assert.is(cell("{.metadata.annotations['ambit.dev/otlp']}"), 'on');
  assert.is(cell('.spec.listeners[0]'), '{"name":"mesh","port":15008}');
  assert.is(cell('.spec.missing'), null);
  assert.is(cell('.spec.listeners[7].port'), null);
});

test('a filter picks the items whose field equals (or not) the value', () => {
  assert.is(cell('.status.conditions[?(@.type=="Programmed")].status'), 'False');
  assert.is(cell(".status.conditions[?(@.type!='Programmed')].type"), 'Accepted');
});

test('what is not the subset is an error naming where', () => {
  assert.throws(() => parseJsonPath('.spec[)'), /at character 6/);
  assert.throws(() => parseJsonPath('spec.name'), /unexpected "s" at character 1/);
  assert.throws(() => parseJsonPath('.status.conditions[?(@.type>3)]'), /expected a filter/);
});

test.run();
