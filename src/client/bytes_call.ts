/**
 * A server-streaming gRPC call whose messages stay bytes, for a CLI path that encodes and decodes its few
 * messages itself (cli/run_wire.ts). Such a path loads neither the protobuf runtime nor connect-es: the
 * runtime boots descriptor.proto before any generated message can be read, ~16 ms of a CLI's start with
 * connect-es. The answer a call expects (HTTP 200, the protobuf gRPC content type, grpc-status 0) is
 * checked here; anything else loads connect-es and lets its gRPC helpers (validateResponse,
 * validateTrailer) raise the ConnectError GrpcTransport (grpc_transport.ts) raises for the same answer.
 * Nothing of connect-es is imported statically: its error type needs the protobuf runtime.
 */

import { EnvelopeError, envelopeHeaderSize, EnvelopeReader } from "../h2/grpc_envelope.ts";
import {
  ErrorCode,
  H2ClientConnection,
  type H2ClientStream,
  type HeaderField,
  type ResponseHead,
} from "../h2/client/mod.ts";

export interface BytesCall {
  /** The daemon's socket. */
  address: string;
  namespace: string;
  /** `/<package>.<Service>/<Method>`. */
  path: string;
  /** The request message, encoded. */
  request: Uint8Array;
  /** Largest response message accepted. */
  readMaxBytes?: number;
}

/**
 * Calls `path` on a connection of its own and yields the response messages as they arrive; the
 * connection closes when the call ends, also when the caller stops reading early. Fails with a
 * ConnectError, as a call through GrpcTransport does.
 */
export async function* serverStreamBytes(call: BytesCall): AsyncGenerator<Uint8Array> {
  let conn: H2ClientConnection;
  try {
    conn = await H2ClientConnection.connect(call.address);
  } catch (err) {
    throw await unavailable(err);
  }
  let stream: H2ClientStream | undefined;
  try {
    stream = await conn.request(requestFields(call), false);
    stream.write(envelope(call.request), true).catch(() => {});
    const head = await stream.response;
    if (!answersGrpc(head)) throw await statusError(head, []);
    const reader = new EnvelopeReader(call.readMaxBytes ?? 4 << 20);
    for (;;) {
      const chunk = await stream.read();
      if (chunk === null) break;
      reader.push(chunk);
      for (let m = reader.next(); m !== undefined; m = reader.next()) yield m;
    }
    if (reader.buffered > 0) throw (await import("./envelope.ts")).truncatedBody(reader.buffered);
    const trailers = stream.trailers ?? [];
    if (header(trailers, "grpc-status") !== "0") throw await statusError(head, trailers);
  } catch (err) {
    throw await asConnectError(err);
  } finally {
    if (stream && !stream.closed) stream.reset(ErrorCode.cancel);
    conn.destroy();
  }
}

function requestFields(call: BytesCall): HeaderField[] {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", call.path],
    [":authority", "localhost"],
    ["content-type", grpcProto],
    ["te", "trailers"],
    ["containerd-namespace", call.namespace],
  ];
}

/** connect-es's contentTypeProto; the daemon, like grpc-go, answers with it or with a bare application/grpc. */
const grpcProto = "application/grpc+proto";

/** One uncompressed gRPC message frame. */
function envelope(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(envelopeHeaderSize + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, envelopeHeaderSize);
  return out;
}

/** A 200 with a gRPC body to come: not a trailers-only answer, which always carries a status. */
function answersGrpc(head: ResponseHead): boolean {
  return head.status === 200 && !head.endStream &&
    [grpcProto, "application/grpc"].includes(header(head.fields, "content-type") ?? "") &&
    header(head.fields, "grpc-status") === undefined;
}

function header(fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find(([n]) => n === name)?.[1];
}

/** The error connect-es's gRPC helpers make of this answer. */
async function statusError(head: ResponseHead, trailers: readonly HeaderField[]): Promise<Error> {
  const [{ validateResponse, validateTrailer }, { fieldsToHeaders }] = await Promise.all([
    import("@connectrpc/connect/protocol-grpc"),
    import("./grpc_transport.ts"),
  ]);
  const responseHeader = fieldsToHeaders(head.fields);
  const { foundStatus, headerError } = validateResponse(head.status, responseHeader);
  if (headerError) return headerError;
  if (!foundStatus) validateTrailer(fieldsToHeaders(trailers), responseHeader);
  const { Code, ConnectError } = await import("@connectrpc/connect");
  return new ConnectError("protocol error: an answer the call did not expect", Code.Internal);
}

/** A failed connect, as GrpcTransport reports it. */
async function unavailable(err: unknown): Promise<Error> {
  return (await import("./grpc_transport.ts")).connectFailure(err);
}

async function asConnectError(err: unknown): Promise<Error> {
  if (err instanceof EnvelopeError) return (await import("./envelope.ts")).envelopeConnectError(err);
  // toConnectError passes a ConnectError through.
  return (await import("./grpc_transport.ts")).toConnectError(err);
}
