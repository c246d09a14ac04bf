/**
 * ttrpc's envelope messages (package ttrpc in containerd/ttrpc request.proto), encoded by hand with the
 * protobuf wire primitives: Request {1 service, 2 method, 3 payload, 4 timeout_nano, 5 metadata KeyValue},
 * Response {1 google.rpc.Status status, 2 payload}, KeyValue {1 key, 2 value}.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.ts";
import { Code, TtrpcError } from "./status.ts";

const utf8 = new TextDecoder();

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

/**
 * The metadata a request may carry, counted as HTTP/2 counts a header list (name + value + 32 per entry)
 * and with the bound Berth's HTTP/2 server sets (src/h2/limits.ts). containerd sends a namespace and
 * perhaps a trace context; unbounded, a 4 MiB frame of 300k tiny pairs held a daemon's only thread
 * ~0.5 s, and frames carrying one 4 MiB value from 8 connections at once took it 70 MiB up.
 */
export const MAX_METADATA_SIZE = 64 << 10;
const METADATA_ENTRY_OVERHEAD = 32;

/** Longer service and method names are cut (and so never routed): only an error status will echo them. */
export const MAX_NAME_BYTES = 1024;

function decodeName(bytes: Uint8Array): string {
  if (bytes.length <= MAX_NAME_BYTES) return utf8.decode(bytes);
  return `${utf8.decode(bytes.subarray(0, MAX_NAME_BYTES))}…`;
}

/**
 * Decodes a Request envelope. Repeated string fields are kept as bytes and decoded once (protobuf's last
 * one wins), so a frame of a million empty `service` fields costs no more than its scan.
 */
export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  const r = new BinaryReader(bytes);
  let service: Uint8Array | undefined;
  let method: Uint8Array | undefined;
  const pairs: Uint8Array[] = [];
  let metadataSize = 0;
  const req: TtrpcRequest = {
    service: "",
    method: "",
    payload: new Uint8Array(),
    timeoutNano: 0n,
    // No prototype: "constructor" or "__proto__" is a key like any other.
    metadata: Object.create(null),
  };
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) service = r.bytes();
    else if (field === 2 && wt === WireType.LengthDelimited) method = r.bytes();
    else if (field === 3 && wt === WireType.LengthDelimited) req.payload = r.bytes();
    else if (field === 4 && wt === WireType.Varint) req.timeoutNano = BigInt(r.int64());
    else if (field === 5 && wt === WireType.LengthDelimited) {
      const pair = r.bytes();
      // The pair's encoding: a little more than name + value, never less.
      metadataSize += pair.length + METADATA_ENTRY_OVERHEAD;
      if (metadataSize > MAX_METADATA_SIZE) {
        throw new TtrpcError(Code.resourceExhausted, `Request metadata exceeds ${MAX_METADATA_SIZE} bytes`);
      }
      pairs.push(pair);
    } else r.skip(wt, field);
  }
  if (service) req.service = decodeName(service);
  if (method) req.method = decodeName(method);
  for (const pair of pairs) {
    const [key, value] = decodeKeyValue(pair);
    (req.metadata[key] ??= []).push(value);
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
