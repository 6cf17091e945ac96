// HPACK against RFC 7541 Appendix C, the specification's own examples: each header block decoded in
// sequence on one decoder (so the dynamic table carries over, as on a connection), compared with the
// fields and the table the RFC lists after it; and our encoder's blocks read back by the decoder.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HpackDecoder, HpackEncoder, type HeaderList } from '../../../shared/hbone/h2/hpack.js';
import { H2CompressionError } from '../../../shared/hbone/h2/errors.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Step {
  block: string;
  headers: HeaderList;
  /** The dynamic table after the block, newest first, and its size. */
  table: [string, string][];
  size: number;
}

const date21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const date22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';

function run(name: string, steps: Step[], tableSize = 4096): void {
  test(`RFC 7541 ${name}`, () => {
    // Appendix C.5 and C.6 run with SETTINGS_HEADER_TABLE_SIZE 256.
    const d = new HpackDecoder(tableSize);
    for (const [i, s] of steps.entries()) {
      const { headers } = d.decode(hex(s.block));
      assert.equal(headers, s.headers, `block ${i + 1}`);
      const t = d.table();
      assert.equal(t.entries, s.table, `table after block ${i + 1}`);
      assert.is(t.size, s.size, `table size after block ${i + 1}`);
    }
  });
}

run('C.2.1 literal header field with indexing', [{ block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', headers: [['custom-key', 'custom-header']], table: [['custom-key', 'custom-header']], size: 55 }]);
run('C.2.2 literal header field without indexing', [{ block: '040c 2f73 616d 706c 652f 7061 7468', headers: [[':path', '/sample/path']], table: [], size: 0 }]);
run('C.2.3 literal header field never indexed', [{ block: '1008 7061 7373 776f 7264 0673 6563 7265 74', headers: [['password', 'secret']], table: [], size: 0 }]);
run('C.2.4 indexed header field', [{ block: '82', headers: [[':method', 'GET']], table: [], size: 0 }]);

const request1: HeaderList = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const request2: HeaderList = [...request1, ['cache-control', 'no-cache']];
const request3: HeaderList = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];
const requestTables: Pick<Step, 'table' | 'size'>[] = [
  { table: [[':authority', 'www.example.com']], size: 57 },
  { table: [['cache-control', 'no-cache'], [':authority', 'www.example.com']], size: 110 },
  { table: [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']], size: 164 },
];

run('C.3 requests without Huffman coding', [
  { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', headers: request1, ...requestTables[0]! },
  { block: '8286 84be 5808 6e6f 2d63 6163 6865', headers: request2, ...requestTables[1]! },
  { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', headers: request3, ...requestTables[2]! },
]);

run('C.4 requests with Huffman coding', [
  { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', headers: request1, ...requestTables[0]! },
  { block: '8286 84be 5886 a8eb 1064 9cbf', headers: request2, ...requestTables[1]! },
  { block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', headers: request3, ...requestTables[2]! },
]);

const response1: HeaderList = [[':status', '302'], ['cache-control', 'private'], ['date', date21], ['location', 'https://www.example.com']];
const response2: HeaderList = [[':status', '307'], ['cache-control', 'private'], ['date', date21], ['location', 'https://www.example.com']];
const response3: HeaderList = [[':status', '200'], ['cache-control', 'private'], ['date', date22], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', cookie]];
const responseTables: Pick<Step, 'table' | 'size'>[] = [
  { table: [['location', 'https://www.example.com'], ['date', date21], ['cache-control', 'private'], [':status', '302']], size: 222 },
  { table: [[':status', '307'], ['location', 'https://www.example.com'], ['date', date21], ['cache-control', 'private']], size: 222 },
  { table: [['set-cookie', cookie], ['content-encoding', 'gzip'], ['date', date22]], size: 215 },
];

run(
  'C.5 responses without Huffman coding (table size 256, entries evicted)',
  [
    {
      block: '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      headers: response1,
      ...responseTables[0]!,
    },
    { block: '4803 3330 37c1 c0bf', headers: response2, ...responseTables[1]! },
    {
      block: '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
      headers: response3,
      ...responseTables[2]!,
    },
  ],
  256,
);

run(
  'C.6 responses with Huffman coding (table size 256, entries evicted)',
  [
    {
      block: '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      headers: response1,
      ...responseTables[0]!,
    },
    { block: '4883 640e ffc1 c0bf', headers: response2, ...responseTables[1]! },
    {
      block: '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
      headers: response3,
      ...responseTables[2]!,
    },
  ],
  256,
);

test('what the encoder writes, the decoder reads back, static-table matches as indexes and the rest as literals', () => {
  const e = new HpackEncoder();
  const d = new HpackDecoder();
  const fields: HeaderList = [[':method', 'CONNECT'], [':authority', '10.0.0.1:8080'], ['forwarded', 'for=10.0.0.2;host=web.shop.svc.cluster.local'], ['baggage', 'k8s.namespace.name=shop'], [':status', '200']];
  for (let i = 0; i < 3; i++) assert.equal(d.decode(e.encode(fields)).headers, fields);
  assert.equal(d.table(), { entries: [], size: 0 }, 'the encoder never indexes');
  // :status 200 is static entry 8, one octet; the first block starts with a size update to 0.
  const status = e.encode([[':status', '200']]);
  assert.equal([...status], [0x88]);
  assert.equal([...new HpackEncoder().encode([[':status', '200']])], [0x20, 0x88]);
});

test('broken blocks are compression errors: index 0 or past the tables, an integer or string cut short, bad Huffman padding, a late size update', () => {
  const cases = ['80', 'ff00', '7f', '0005616263', '008100', '8220', '3fe21f'];
  for (const c of cases) assert.throws(() => new HpackDecoder().decode(hex(c)), (err: unknown) => err instanceof H2CompressionError, c);
});

test('a header list over the limit is flagged but still decoded, so the table stays in step', () => {
  const d = new HpackDecoder();
  const big = hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572');
  const r = d.decode(big, 40);
  assert.ok(r.tooLarge);
  assert.equal(d.table().entries, [['custom-key', 'custom-header']]);
  assert.equal(d.decode(hex('be')).headers, [['custom-key', 'custom-header']]);
});

test.run();
