// The gRPC client of the waypoint's protocol tests: `count` calls of Echo (unary) or Stream
// (server streaming) to grpc-echo, one after another on one channel, each printed as one JSON line
// with its gRPC status code, so a test reads what a gRPC application would have seen.

import * as grpc from '@grpc/grpc-js';
import { echoDefinition, type EchoReply, type EchoRequest } from './grpc-echo.js';

export interface GrpcClientOptions {
  /** `host:port` of the server (a Service VIP or name). */
  target: string;
  method: 'echo' | 'stream';
  /** Sent with every call. */
  metadata: [string, string][];
  count: number;
  message: string;
  /** Per call. */
  deadlineMs: number;
}

/** One call as the test reads it: the status code and what the server answered. */
export interface CallResult {
  method: 'echo' | 'stream';
  code: number;
  details: string;
  /** Who answered (the last message of a stream). */
  version?: string;
  pod?: string;
  metadata?: Record<string, string[]>;
  /** Messages received (1 for a successful unary call). */
  messages: number;
}

/** Runs the calls; resolves to the exit code: 0 when every call ended with status OK. */
export async function runGrpcClient(o: GrpcClientOptions): Promise<number> {
  const client = new grpc.Client(o.target, grpc.credentials.createInsecure());
  let failed = 0;
  try {
    for (let i = 0; i < o.count; i++) {
      const metadata = new grpc.Metadata();
      for (const [k, v] of o.metadata) metadata.add(k, v);
      const r = await (o.method === 'echo' ? unary(client, o, metadata) : serverStream(client, o, metadata));
      if (r.code !== grpc.status.OK) failed++;
      process.stdout.write(JSON.stringify(r) + '\n');
    }
  } finally {
    client.close();
  }
  return failed === 0 ? 0 : 1;
}

const options = (o: GrpcClientOptions): grpc.CallOptions => ({ deadline: Date.now() + o.deadlineMs });

function unary(client: grpc.Client, o: GrpcClientOptions, metadata: grpc.Metadata): Promise<CallResult> {
  const d = echoDefinition.Echo;
  return new Promise((resolve) => {
    client.makeUnaryRequest<EchoRequest, EchoReply>(d.path, d.requestSerialize, d.responseDeserialize, { message: o.message }, metadata, options(o), (err, reply) => {
      if (err) return resolve({ method: 'echo', code: err.code, details: err.details, messages: 0 });
      resolve({ method: 'echo', code: grpc.status.OK, details: '', version: reply!.version, pod: reply!.pod, metadata: reply!.metadata, messages: 1 });
    });
  });
}

function serverStream(client: grpc.Client, o: GrpcClientOptions, metadata: grpc.Metadata): Promise<CallResult> {
  const d = echoDefinition.Stream;
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest<EchoRequest, EchoReply>(d.path, d.requestSerialize, d.responseDeserialize, { message: o.message, count: 3 }, metadata, options(o));
    let last: EchoReply | undefined;
    let messages = 0;
    call.on('data', (m: EchoReply) => {
      last = m;
      messages++;
    });
    // The status comes once, after the last message (or instead of any, when the call failed).
    call.on('status', (s: grpc.StatusObject) =>
      resolve({ method: 'stream', code: s.code, details: s.details, ...(last ? { version: last.version, pod: last.pod, metadata: last.metadata } : {}), messages }),
    );
    call.on('error', () => undefined);
  });
}
