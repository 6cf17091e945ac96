// The agent's side of a push, between the WebSocket and the state: pushes are applied strictly in
// the order they arrived (a delta never overtakes a full push still being decompressed), a bad one
// is refused without stopping those after it, and a large push is parsed and checked in slices
// with the event loop given back between them, ending in the same state as one parse would.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { PushReceiver } from '../../../agent/control/receiver.js';
import { parseConfigPush } from '../../../agent/control/parse.js';
import { AgentState } from '../../../agent/state/state.js';
import { Pacer } from '../../../agent/state/pacer.js';
import type { AgentMessage, ConfigPush, WireEntry } from '../../../shared/protocol/config.js';

const log = pino({ level: 'silent' });

/** A Pacer that pauses at every chance and counts how often it gave the event loop back. */
class CountingPacer extends Pacer {
  pauses = 0;
  constructor() {
    super(0);
  }
  override async pause(): Promise<void> {
    this.pauses++;
    await super.pause();
  }
}

const workloads = (n: number, node = 'n1'): WireEntry[] =>
  Array.from({ length: n }, (_, i) => ({ key: `workload/shop/web-${i}`, value: { ip: `10.1.${i >> 8}.${i & 255}`, node, serviceAccount: 'web', owner: 'Deployment/web', labels: { app: 'web', note: `quote " and \\ backslash ${i}` } } }));
const full = (to: number, upserts: WireEntry[]): ConfigPush => ({ type: 'config', full: true, from: 0, to, upserts, deletes: [] });
const delta = (from: number, to: number, upserts: WireEntry[], deletes: string[] = []): ConfigPush => ({ type: 'config', full: false, from, to, upserts, deletes });
const gz = (p: ConfigPush) => gzipSync(JSON.stringify(p));
const text = (p: ConfigPush) => Buffer.from(JSON.stringify(p));

function receiver(state: AgentState) {
  const replies: AgentMessage[] = [];
  const resyncs: string[] = [];
  const r = new PushReceiver({ state, log, resync: (reason) => resyncs.push(reason) });
  return { r, replies, resyncs, send: (data: Buffer, binary: boolean) => r.receive(data, binary, (m) => replies.push(m)) };
}

test('a delta right behind a large full push waits for it: both acknowledged, in order, and both applied', async () => {
  const state = new AgentState('n1');
  const { r, replies, send } = receiver(state);
  send(gz(full(7, workloads(20_000))), true);
  send(text(delta(7, 8, [{ key: 'workload/shop/late', value: { ip: '10.9.9.9', node: 'n1', serviceAccount: 'web', owner: '' } }], ['workload/shop/web-0'])), false);
  await r.idle();
  assert.equal(replies, [
    { type: 'ack', version: 7 },
    { type: 'ack', version: 8 },
  ]);
  assert.is(state.version, 8);
  assert.is(state.workloads.size, 20_000);
  assert.ok(state.workloads.has('workload/shop/late'));
  assert.not.ok(state.workloads.has('workload/shop/web-0'));
  assert.is(state.workloads.get('workload/shop/web-7')?.labels?.note, 'quote " and \\ backslash 7');
});

test('a push that does not decompress is refused, and the pushes after it are still applied', async () => {
  const state = new AgentState('n1');
  const { r, replies, send } = receiver(state);
  send(gz(full(3, workloads(10))), true);
  send(Buffer.from('not gzip at all'), true);
  send(text(delta(3, 4, workloads(2, 'n2'))), false);
  await r.idle();
  assert.is(replies.length, 3);
  assert.equal(replies[0], { type: 'ack', version: 3 });
  assert.is(replies[1]!.type, 'nack');
  assert.match((replies[1] as { reason: string }).reason, 'did not decompress');
  assert.equal(replies[2], { type: 'ack', version: 4 });
  assert.is(state.workloads.get('workload/shop/web-1')?.node, 'n2');
});

test('a large push with a bad entry is refused whole and changes nothing; a delta that does not fit asks for a resync', async () => {
  const state = new AgentState('n1');
  const { r, replies, resyncs, send } = receiver(state);
  send(gz(full(2, workloads(100))), true);
  send(gz(full(5, [...workloads(5_000), { key: 'workload/shop/broken', value: { node: 'n1' } }])), true);
  send(text(delta(4, 6, [])), false);
  send(Buffer.from('{"type":"config"'), false);
  await r.idle();
  assert.equal(replies[0], { type: 'ack', version: 2 });
  assert.equal(replies[1], { type: 'nack', version: 5, reason: 'workload workload/shop/broken needs ip and node' });
  assert.equal(replies[2], { type: 'nack', version: 6, reason: 'delta from version 4 does not apply to version 2' });
  assert.equal(replies[3], { type: 'nack', version: -1, reason: 'push is not JSON' });
  assert.is(state.version, 2);
  assert.is(state.workloads.size, 100);
  assert.is(resyncs.length, 1);
});

test('a large push is parsed and checked in slices, giving the event loop back, to what one JSON.parse gives', async () => {
  const push = full(9, workloads(5_000));
  const json = JSON.stringify(push);
  const pacer = new CountingPacer();
  const parsed = (await parseConfigPush(json, pacer)) as ConfigPush;
  assert.equal(parsed, JSON.parse(json));
  assert.ok(pacer.pauses >= 5_000 / 256, `parsing paused ${pacer.pauses} times`);

  const paced = new AgentState('n1');
  const checking = new CountingPacer();
  await paced.applyPaced(parsed, checking);
  assert.ok(checking.pauses >= 10, `checking paused ${checking.pauses} times`);
  const whole = new AgentState('n1');
  whole.apply(JSON.parse(json) as ConfigPush);
  assert.equal([...paced.workloads], [...whole.workloads]);
  assert.is(paced.version, 9);
});

test('the sliced parser agrees with JSON.parse on odd but valid texts, and fails where it fails', async () => {
  const texts = [
    '{"type":"config","upserts":[],"deletes":[]}',
    '{ "upserts" : [ ] , "x" : 1 }',
    '{"upserts":[{"key":"a\\\\","value":{"s":"]\\"}"}},{"key":"b","value":{}}],"upserts":[1]}',
    '{"nested":{"upserts":[3]},"upserts":[4, 5]}',
    '[1,2]',
    '{"upserts":[1,2',
    '{"upserts":{"a":1}}',
  ];
  for (const t of texts) {
    let expected: unknown;
    let expectedError = false;
    try {
      expected = JSON.parse(t);
    } catch {
      expectedError = true;
    }
    let got: unknown;
    let gotError = false;
    try {
      got = await parseConfigPush(t, new Pacer(0));
    } catch {
      gotError = true;
    }
    assert.is(gotError, expectedError, t);
    assert.equal(got, expected, t);
  }
});

test.run();
