// The WebSocket client of the waypoint's protocol tests: connects to a URL, sends `count` text
// messages one at a time, waits for each answer, closes, and prints one JSON line of what it sent
// and got back (or the error), so a test in a pod reads the exchange as the application saw it.

import WebSocket from 'ws';

export interface WsClientOptions {
  url: string;
  count: number;
  timeoutMs: number;
}

export interface WsClientResult {
  sent: string[];
  received: string[];
  /** The close code the server sent, when the exchange ended cleanly. */
  closeCode?: number;
  error?: string;
}

export function runWsClient(o: WsClientOptions): Promise<number> {
  const result: WsClientResult = { sent: [], received: [] };
  return new Promise((resolve) => {
    const ws = new WebSocket(o.url, { handshakeTimeout: o.timeoutMs });
    const timer = setTimeout(() => fail(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      process.stdout.write(JSON.stringify(result) + '\n');
      resolve(code);
    };
    const fail = (err: Error) => {
      result.error = err.message;
      ws.terminate();
      finish(1);
    };
    const next = () => {
      if (result.sent.length === o.count) return void ws.close(1000, 'done');
      const m = `message ${result.sent.length + 1}`;
      result.sent.push(m);
      ws.send(m);
    };
    ws.on('open', next);
    ws.on('message', (data) => {
      result.received.push(String(data));
      next();
    });
    ws.on('unexpected-response', (_req, res) => fail(new Error(`the upgrade was answered ${res.statusCode}`)));
    ws.on('error', fail);
    ws.on('close', (code) => {
      result.closeCode = code;
      finish(result.received.length === o.count ? 0 : 1);
    });
  });
}
