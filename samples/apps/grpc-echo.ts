// The gRPC backend of the waypoint's protocol tests: `ambit.echo.Echo` with a unary method Echo,
// which answers who served it (version, pod) and the metadata it received, and a server-streaming
// method Stream, which answers `count` messages. Real gRPC over HTTP/2 (grpc-js); messages are JSON
// bytes instead of protobuf, so no proto file: the framing, trailers and status codes are gRPC's.

import * as grpc from '@grpc/grpc-js';

/** The service's package and name, which every gRPC path carries: `/ambit.echo.Echo/Echo`. */
export const echoService = 'ambit.echo.Echo';

export interface EchoRequest {
  message?: string;
  /** How many messages Stream answers (1..100). */
  count?: number;
}

export interface EchoReply {
  message: string;
  version: string;
  pod: string;
  /** The request's metadata as the server got it, binary entries left out. */
  metadata: Record<string, string[]>;
  /** Stream's position of this message, from 0. */
  index?: number;
}

const toJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const fromJson = <T>(bytes: Buffer): T => JSON.parse(bytes.toString('utf8')) as T;

/** The methods as grpc-js's generic client and server take them: paths and (de)serializers. */
export const echoDefinition = {
  Echo: {
    path: `/${echoService}/Echo`,
    requestStream: false,
    responseStream: false,
    requestSerialize: toJson,
    requestDeserialize: fromJson<EchoRequest>,
    responseSerialize: toJson,
    responseDeserialize: fromJson<EchoReply>,
  },
  Stream: {
    path: `/${echoService}/Stream`,
    requestStream: false,
    responseStream: true,
    requestSerialize: toJson,
    requestDeserialize: fromJson<EchoRequest>,
    responseSerialize: toJson,
    responseDeserialize: fromJson<EchoReply>,
  },
} satisfies grpc.ServiceDefinition;

export interface GrpcEchoOptions {
  port: number;
  version: string;
  /** Told the port bound (port 0 picks one). */
  onListening?: (port: number) => void;
}

function metadataOf(m: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(m.getMap())) if (typeof v === 'string') out[k] = m.get(k).map(String);
  return out;
}

/** Serves until SIGTERM; the server is returned for tests to shut down. */
export function runGrpcEcho(o: GrpcEchoOptions): grpc.Server {
  const pod = process.env.POD_NAME ?? 'unknown';
  const reply = (call: { request: EchoRequest; metadata: grpc.Metadata }, index?: number): EchoReply => ({
    message: call.request.message ?? '',
    version: o.version,
    pod,
    metadata: metadataOf(call.metadata),
    ...(index !== undefined ? { index } : {}),
  });
  const server = new grpc.Server();
  server.addService(echoDefinition, {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, done: grpc.sendUnaryData<EchoReply>) => done(null, reply(call)),
    Stream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      const count = Math.min(100, Math.max(1, Math.trunc(Number(call.request.count ?? 3)) || 3));
      for (let i = 0; i < count; i++) call.write(reply(call, i));
      call.end();
    },
  });
  server.bindAsync(`0.0.0.0:${o.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
    if (err) {
      process.stderr.write(`grpc-echo: cannot listen on :${o.port}: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`grpc-echo ${o.version} listening on :${bound}\n`);
    o.onListening?.(bound);
  });
  process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
  return server;
}
