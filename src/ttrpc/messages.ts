/**
 * ttrpc's envelope messages (package ttrpc in containerd/ttrpc request.proto), encoded by hand with the
 * protobuf wire primitives: Request {1 service, 2 method, 3 payload, 4 timeout_nano, 5 metadata KeyValue},
 * Response {1 google.rpc.Status status, 2 payload}, KeyValue {1 key, 2 value}.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.ts";

/** ttrpc metadata: a key may carry several values, in order. */
export type Metadata = Record<string, string[]>;

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  /** 0 means no deadline. */
  timeoutNano: bigint;
  metadata: Metadata;
}

export interface TtrpcResponse {
  status: Status | undefined;
  payload: Uint8Array;
}

export function encodeRequest(req: TtrpcRequest): Uint8Array {
  const w = new BinaryWriter();
  if (req.service) w.tag(1, WireType.LengthDelimited).string(req.service);
  if (req.method) w.tag(2, WireType.LengthDelimited).string(req.method);
  if (req.payload.length) w.tag(3, WireType.LengthDelimited).bytes(req.payload);
  if (req.timeoutNano !== 0n) w.tag(4, WireType.Varint).int64(req.timeoutNano);
  for (const [key, values] of Object.entries(req.metadata)) {
    for (const value of values) {
      w.tag(5, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(key);
      w.tag(2, WireType.LengthDelimited).string(value);
      w.join();
    }
  }
  return w.finish();
}

export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  const r = new BinaryReader(bytes);
  const req: TtrpcRequest = {
    service: "",
    method: "",
    payload: new Uint8Array(),
    timeoutNano: 0n,
    metadata: {},
  };
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) req.service = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) req.method = r.string();
    else if (field === 3 && wt === WireType.LengthDelimited) req.payload = r.bytes();
    else if (field === 4 && wt === WireType.Varint) req.timeoutNano = BigInt(r.int64());
    else if (field === 5 && wt === WireType.LengthDelimited) {
      const [key, value] = decodeKeyValue(r.bytes());
      (req.metadata[key] ??= []).push(value);
    } else r.skip(wt, field);
  }
  return req;
}

function decodeKeyValue(bytes: Uint8Array): [string, string] {
  const r = new BinaryReader(bytes);
  let key = "";
  let value = "";
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) key = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) value = r.string();
    else r.skip(wt, field);
  }
  return [key, value];
}

export function encodeResponse(res: TtrpcResponse): Uint8Array {
  const w = new BinaryWriter();
  if (res.status) w.tag(1, WireType.LengthDelimited).bytes(toBinary(StatusSchema, res.status));
  if (res.payload.length) w.tag(2, WireType.LengthDelimited).bytes(res.payload);
  return w.finish();
}

export function decodeResponse(bytes: Uint8Array): TtrpcResponse {
  const r = new BinaryReader(bytes);
  const res: TtrpcResponse = { status: undefined, payload: new Uint8Array() };
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) res.status = fromBinary(StatusSchema, r.bytes());
    else if (field === 2 && wt === WireType.LengthDelimited) res.payload = r.bytes();
    else r.skip(wt, field);
  }
  return res;
}

export function statusOf(code: number, message: string): Status {
  return create(StatusSchema, { code, message });
}
