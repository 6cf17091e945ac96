// The one protobuf body the API server reads: kubectl's typed clients send a TokenRequest (for
// `kubectl create token`) as application/vnd.kubernetes.protobuf, with no JSON fallback. This is
// a reader of the wire format (varints and length-delimited fields) for Kubernetes' envelope
// (magic "k8s\0", runtime.Unknown) and authentication/v1 TokenRequest's fields; nothing else.

import { badRequest } from './errors.js';

const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

interface Field {
  number: number;
  /** A varint's value, or a length-delimited field's bytes. */
  value: bigint | Buffer;
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= buf.length || shift > 63n) throw badRequest('the protobuf body is truncated or malformed');
      const b = buf[at++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    const number = key >>> 3;
    if (wire === 0) out.push({ number, value: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      if (at + len > buf.length) throw badRequest('the protobuf body is truncated or malformed');
      out.push({ number, value: buf.subarray(at, at + len) });
      at += len;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw badRequest(`the protobuf body has a field of wire type ${wire}, which no Kubernetes message uses`);
  }
  return out;
}

const text = (f: Field | undefined) => (f && Buffer.isBuffer(f.value) ? f.value.toString('utf8') : undefined);
const bytes = (f: Field | undefined) => (f && Buffer.isBuffer(f.value) ? f.value : Buffer.alloc(0));

/** The message inside Kubernetes' protobuf envelope, and the type it says it is. */
function unwrap(body: Buffer): { apiVersion: string; kind: string; raw: Buffer } {
  if (body.length < 4 || !body.subarray(0, 4).equals(magic)) throw badRequest('the protobuf body lacks the Kubernetes envelope ("k8s\\0")');
  const unknown = fields(body.subarray(4));
  const typeMeta = fields(bytes(unknown.find((f) => f.number === 1)));
  return { apiVersion: text(typeMeta.find((f) => f.number === 1)) ?? '', kind: text(typeMeta.find((f) => f.number === 2)) ?? '', raw: bytes(unknown.find((f) => f.number === 2)) };
}

/** An authentication.k8s.io/v1 TokenRequest from its protobuf form, as the JSON one would read. */
export function decodeTokenRequest(body: Buffer): unknown {
  const { apiVersion, kind, raw } = unwrap(body);
  if (kind !== 'TokenRequest') throw badRequest(`the protobuf body is a ${kind || 'message of no kind'}, not a TokenRequest`);
  const top = fields(raw);
  const spec = fields(bytes(top.find((f) => f.number === 2)));
  const out: { audiences: string[]; expirationSeconds?: number; boundObjectRef?: Record<string, string> } = { audiences: spec.filter((f) => f.number === 1).map((f) => text(f)!) };
  const expiry = spec.find((f) => f.number === 4);
  if (expiry && typeof expiry.value === 'bigint') out.expirationSeconds = Number(BigInt.asIntN(64, expiry.value));
  const bound = spec.find((f) => f.number === 3);
  if (bound) {
    const b = fields(bytes(bound));
    const ref: Record<string, string> = {};
    ['kind', 'apiVersion', 'name', 'uid'].forEach((k, i) => {
      const v = text(b.find((f) => f.number === i + 1));
      if (v) ref[k] = v;
    });
    out.boundObjectRef = ref;
  }
  return { apiVersion, kind, metadata: {}, spec: out };
}
