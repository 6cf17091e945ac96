// What the HBONE ends refuse, on loopback with real TLS and HTTP/2: clients without a valid SVID,
// servers that are not who they should be, malformed requests, and floods, each counted by reason
// while the server keeps serving.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { once } from 'node:events';
import { HbonePool } from '../../../shared/hbone/pool.js';
import { HboneConnectFailed, HboneConnectRefused, HbonePeerUntrusted, parseAuthority } from '../../../shared/hbone/protocol.js';
import { api, bundle, echoed, fixture, makeSvid, other, rawSession, readAll, rejection, until, web } from './helpers.js';

test('the server refuses a client without a certificate, and one from another CA', async () => {
  const f = await fixture();
  try {
    const bare = await rawSession(f.port);
    const [code] = (await once(bare, 'goaway')) as [number];
    assert.is(code, http2.constants.NGHTTP2_INADEQUATE_SECURITY);
    bare.destroy();
    const stranger = makeSvid(other, 'shop', 'web');
    const err = await rejection(f.pool.connect(f.request({ identity: stranger.uri, key: stranger.keyPem, cert: stranger.certPem })));
    assert.instance(err, HboneConnectFailed);
    assert.is((err as HboneConnectFailed).stage, 'refused-certificate');
    assert.is(f.server.counters.refused['no-certificate'], 1);
    assert.is(f.server.counters.refused['untrusted-chain'], 1);
    assert.is(f.server.counters.tunnels, 0);
  } finally {
    await f.close();
  }
});

test('the server answers 405 to a method other than CONNECT and 400 to an authority that is not IPv4:port', async () => {
  const f = await fixture();
  try {
    const session = await rawSession(f.port, web);
    const get = session.request({ ':method': 'GET', ':path': '/' });
    const [headers] = (await once(get, 'response')) as [http2.IncomingHttpHeaders];
    assert.is(headers[':status'], 405);
    get.resume();
    session.close();
    for (const authority of ['shop.example:80', '127.0.0.1', '127.0.0.01:80', '127.0.0.1:0', '127.0.0.1:65536', '[::1]:80']) {
      const err = await rejection(f.pool.connect(f.request({ authority })));
      assert.instance(err, HboneConnectRefused, authority);
      assert.is((err as HboneConnectRefused).status, 400, authority);
    }
    assert.is(f.server.counters.refused['method-not-allowed'], 1);
    assert.is(f.server.counters.refused['bad-authority'], 6);
    assert.equal(parseAuthority('10.1.2.3:8080'), { ip: '10.1.2.3', port: 8080 });
  } finally {
    await f.close();
  }
});

test('the client refuses a server that is not the expected identity, or whose SVID is from another CA', async () => {
  const f = await fixture();
  const g = await fixture({ serverSvid: makeSvid(other, 'shop', 'api') });
  try {
    const wrong = await rejection(f.pool.connect(f.request({ expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/payments' })));
    assert.instance(wrong, HbonePeerUntrusted);
    assert.is((wrong as HbonePeerUntrusted).reason, 'wrong-identity');
    assert.is(await echoed(f, 'right one', { expectedIdentity: api.uri }), 'right one');
    const untrusted = await rejection(g.pool.connect(g.request()));
    assert.is((untrusted as HbonePeerUntrusted).reason, 'untrusted-chain');
    assert.is(f.server.counters.tunnels + g.server.counters.tunnels, 1, 'no CONNECT reached a refused server');
  } finally {
    await f.close();
    await g.close();
  }
});

test('a connect fails with its stage when no certificate is given, or the node refuses TCP, and the pool goes on', async () => {
  const f = await fixture();
  try {
    const noCert = await rejection(f.pool.connect(f.request({ key: undefined, cert: undefined })));
    assert.is((noCert as HboneConnectFailed).stage, 'credentials');
    // Nothing listens on port 1 of loopback: the connection is refused.
    const closed = await rejection(f.pool.connect(f.request({ nodePort: 1 })));
    assert.instance(closed, HboneConnectFailed);
    assert.is((closed as HboneConnectFailed).stage, 'tcp');
    assert.is(await echoed(f, 'still fine'), 'still fine');
    assert.is(f.pool.sessionCount(), 1);
  } finally {
    await f.close();
  }
});

test('the server bounds handshakes in time and sessions in number', async () => {
  const f = await fixture({ limits: { handshakeTimeoutMs: 100, maxSessions: 1 } });
  try {
    const silent = tcpConnect(f.port, '127.0.0.1');
    await once(silent, 'close');
    assert.is(f.server.counters.refused['handshake-timeout'], 1);
    const held = await f.pool.connect(f.request());
    const crowd = new HbonePool({ trustBundle: () => bundle });
    const err = await rejection(crowd.connect(f.request()));
    assert.instance(err, HboneConnectFailed);
    assert.is(f.server.counters.refused['too-many-sessions'], 1);
    crowd.close();
    held.end('still served');
    assert.is(await readAll(held), 'still served');
  } finally {
    await f.close();
  }
});

test('a flood of 2,000 streams opened and reset at once does not crash the server, which serves new clients after', async () => {
  const f = await fixture();
  try {
    const flood = await rawSession(f.port, web);
    await once(flood, 'connect');
    // Batches within the advertised 100 streams, each flushed before it is reset: a stream reset
    // before its HEADERS left is dropped by nghttp2 and never reaches the server.
    for (let opened = 0; opened < 2000 && !flood.destroyed && !flood.closed; ) {
      const batch: http2.ClientHttp2Stream[] = [];
      for (let j = 0; j < 100 && !flood.destroyed; j++, opened++) {
        const s = flood.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${f.echoPort}` });
        s.on('error', () => undefined);
        batch.push(s);
      }
      await new Promise((r) => setImmediate(r));
      for (const s of batch) s.close(http2.constants.NGHTTP2_CANCEL);
    }
    // The flooding client itself may wedge (its own queue of ~1,000 RST_STREAMs trips nghttp2's
    // outbound flood guard), so the verdict is read on the server.
    await until(() => f.server.counters.refused['stream-flood'] === 1 && f.server.counters.activeSessions === 0);
    flood.destroy();
    assert.ok(f.server.counters.tunnels > 100, `the flood reached the server (${f.server.counters.tunnels} CONNECTs)`);
    assert.is(f.server.counters.refused['stream-flood'], 1);
    assert.is(await echoed(f, 'after the flood'), 'after the flood');
    assert.is(f.server.counters.activeSessions, 1, 'the flooding session is gone, not left open');
  } finally {
    await f.close();
  }
});

test.run();
