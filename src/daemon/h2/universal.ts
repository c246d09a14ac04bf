/** Serves an HTTP/2 stream with one of Connect's universal handlers (gRPC, gRPC-web and Connect protocols). */

import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  ErrorCode,
  type H2ServerStream,
  type HeaderField,
  isConnectionSpecific,
} from "../../h2/server/mod.ts";

/** Runs the handler on the stream; settles once the response is written (or the stream is reset). */
export function serveUniversal(
  stream: H2ServerStream,
  handler: UniversalHandler,
  onError: (err: unknown) => void,
): Promise<void> {
  return handler({
    httpVersion: "2.0",
    method: stream.method,
    url: `${stream.scheme || "http"}://${stream.authority || "localhost"}${stream.path}`,
    header: stream.requestHeader,
    body: stream.body(),
    signal: stream.signal,
  }).then((res) => writeResponse(stream, res)).catch((err) => {
    if (!stream.closed) {
      onError(err);
      stream.reset(ErrorCode.internal);
    }
  });
}

async function writeResponse(stream: H2ServerStream, res: UniversalServerResponse): Promise<void> {
  const it = res.body?.[Symbol.asyncIterator]();
  try {
    // Headers after the first chunk: the implementation may set response headers until then.
    let chunk = await it?.next();
    stream.respond(responseFields(res.status, res.header));
    while (chunk && !chunk.done) {
      await stream.write(chunk.value);
      chunk = await it!.next();
    }
    const trailers = res.trailer ? headerFields(res.trailer) : [];
    await stream.end(trailers.length > 0 ? trailers : undefined);
  } catch (err) {
    // The handler learns that its response can't be delivered (the client reset the stream).
    it?.throw?.(err).catch(() => {});
    if (!stream.closed) stream.reset(ErrorCode.cancel);
  } finally {
    it?.return?.().catch(() => {});
  }
}

/** `:status` first, then the headers; connection-specific headers are not allowed in HTTP/2. */
export function responseFields(status: number, header: Headers | undefined): HeaderField[] {
  const fields: HeaderField[] = [[":status", String(status)]];
  header?.forEach((value, name) => {
    if (!isConnectionSpecific(name)) fields.push([name, value]);
  });
  return fields;
}

export function headerFields(header: Headers): HeaderField[] {
  const fields: HeaderField[] = [];
  header.forEach((value, name) => fields.push([name, value]));
  return fields;
}

/**
 * Unknown methods get a trailers-only gRPC answer with status 12, which gRPC clients understand;
 * an HTTP 404 would surface as a transport error. Connect-protocol callers get Connect's JSON error.
 */
export function answerUnknown(stream: H2ServerStream): void {
  answerError(stream, { grpc: 12, connect: "unimplemented", http: 404 }, `unknown method ${stream.path}`);
}

/** Answers a call with an error before reading its request: gRPC's status trailers, else Connect's JSON. */
export function answerError(
  stream: H2ServerStream,
  code: { grpc: number; connect: string; http: number },
  message: string,
): void {
  const type = stream.header("content-type") ?? "";
  if (type.startsWith("application/grpc") && !type.startsWith("application/grpc-web")) {
    stream.respond([
      [":status", "200"],
      ["content-type", "application/grpc"],
      ["grpc-status", String(code.grpc)],
      ["grpc-message", encodeURIComponent(message)],
    ], true);
    return;
  }
  stream.respond([[":status", String(code.http)], ["content-type", "application/json"]]);
  stream.write(new TextEncoder().encode(JSON.stringify({ code: code.connect, message }))).catch(() => {});
  stream.end().catch(() => {});
}
