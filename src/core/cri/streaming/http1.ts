/**
 * The HTTP/1.1 a streaming request needs, and no more: one request head read under a size and time
 * limit, the upgrade and protocol negotiation checks of k8s.io/apimachinery's httpstream, and plain
 * responses. Each connection carries one request; anything but an upgrade is answered and closed.
 */

import { concatBytes } from "../../../base/bytes.ts";

/** A request head; header names are lower case, each with the values of all its lines. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** The target without its query. */
  readonly path: string;
  readonly headers: ReadonlyMap<string, readonly string[]>;
}

export interface HeadLimits {
  /** The request line and headers together, CRLFs included. */
  readonly maxBytes: number;
  readonly maxHeaders: number;
  /** A client that has not sent its whole head by then is dropped (slow-loris). */
  readonly timeoutMs: number;
}

/** A request this server answers with `status` instead of an upgrade. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: readonly (readonly [string, string])[] = [],
  ) {
    super(message);
    this.name = "HttpError";
  }
}

const reasons: Record<number, string> = {
  101: "Switching Protocols",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;

/**
 * Reads one request head; returns it and the bytes read past it (the first SPDY frames, if the client
 * did not wait for the 101). A head over the limits, or late, is an HttpError.
 */
export async function readRequestHead(
  conn: Pick<Deno.Conn, "read">,
  limits: HeadLimits,
): Promise<{ head: RequestHead; rest: Uint8Array }> {
  const buf = new Uint8Array(limits.maxBytes + 4);
  let len = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpError(408, `No complete request head within ${limits.timeoutMs} ms`)),
      limits.timeoutMs,
    );
  });
  try {
    for (;;) {
      if (len >= buf.length) {
        throw new HttpError(431, `Request head exceeds ${limits.maxBytes} bytes`);
      }
      const read = conn.read(buf.subarray(len));
      // The read outlives a timeout; the caller closes the connection, which settles it.
      read.catch(() => {});
      const n = await Promise.race([read, late]);
      if (n === null) throw new HttpError(400, "The connection ended inside the request head");
      const from = Math.max(0, len - 3);
      len += n;
      const end = indexOfHeadEnd(buf, from, len);
      if (end < 0) continue;
      if (end > limits.maxBytes) throw new HttpError(431, `Request head exceeds ${limits.maxBytes} bytes`);
      return { head: parseHead(buf.subarray(0, end), limits), rest: buf.slice(end + 4, len) };
    }
  } finally {
    clearTimeout(timer);
  }
}

function indexOfHeadEnd(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

export function parseHead(bytes: Uint8Array, limits: Pick<HeadLimits, "maxHeaders">): RequestHead {
  const lines = new TextDecoder("latin1").decode(bytes).split("\r\n");
  const m = REQUEST_LINE.exec(lines[0] ?? "");
  if (!m) throw new HttpError(400, "Malformed request line");
  if (lines.length - 1 > limits.maxHeaders) {
    throw new HttpError(431, `Request has more than ${limits.maxHeaders} header lines`);
  }
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    // Obsolete line folding (a line starting with white space) is refused, as RFC 9112 allows.
    if (!TOKEN.test(name)) {
      throw new HttpError(400, `Malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    }
    const value = line.slice(colon + 1).trim();
    const key = name.toLowerCase();
    const list = headers.get(key);
    if (list) list.push(value);
    else headers.set(key, [value]);
  }
  const target = m[2]!;
  const q = target.indexOf("?");
  const head = { method: m[1]!, target, path: q < 0 ? target : target.slice(0, q), headers };
  checkNoBody(head);
  return head;
}

/** A streaming request has no body: bytes after the head are the client's first frames. */
function checkNoBody(head: RequestHead): void {
  if (head.headers.has("transfer-encoding")) {
    throw new HttpError(400, `Request for ${head.path} carries a body (Transfer-Encoding)`);
  }
  const length = head.headers.get("content-length");
  if (length && length.some((v) => v !== "0")) {
    throw new HttpError(400, `Request for ${head.path} carries a body (Content-Length ${length.join(", ")})`);
  }
}

/** Values of a comma-separated header over all its lines (httpstream's commaSeparatedHeaderValues). */
export function headerList(head: RequestHead, name: string): string[] {
  return (head.headers.get(name) ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v);
}

/**
 * httpstream.Handshake: the first protocol in the client's order that the server supports. No
 * X-Stream-Protocol-Version is a 400; no common protocol a 403 that lists the server's.
 */
export function negotiateProtocol(head: RequestHead, supported: readonly string[]): string {
  const offered = headerList(head, "x-stream-protocol-version");
  if (offered.length === 0) {
    throw new HttpError(400, `Cannot upgrade ${head.path}: X-Stream-Protocol-Version is required`);
  }
  const chosen = offered.find((p) => supported.includes(p));
  if (chosen) return chosen;
  throw new HttpError(
    403,
    `Cannot upgrade ${head.path}: the client offers ${offered.join(", ")}, the server accepts ${
      supported.join(", ")
    }`,
    supported.map((p) => ["X-Accepted-Stream-Protocol-Versions", p]),
  );
}

/** The headers of an upgrade to SPDY/3.1, as spdy.responseUpgrader checks them. */
export function checkSpdyUpgrade(head: RequestHead): void {
  const connection = (head.headers.get("connection") ?? []).join(",").toLowerCase();
  const upgrade = (head.headers.get("upgrade") ?? []).join(",").toLowerCase();
  if (!connection.includes("upgrade") || !upgrade.includes("spdy/3.1")) {
    throw new HttpError(
      400,
      `Cannot upgrade ${head.path}: the request lacks Connection: Upgrade and Upgrade: SPDY/3.1`,
    );
  }
}

export interface ResponseOptions {
  readonly headers?: readonly (readonly [string, string])[];
  /** Text; a response with a body closes the connection after it. */
  readonly body?: string;
}

/** A complete response head, and its body if any. */
export function encodeResponse(status: number, options: ResponseOptions = {}): Uint8Array {
  let text = `HTTP/1.1 ${status} ${reasons[status] ?? "Status"}\r\n`;
  for (const [name, value] of options.headers ?? []) text += `${name}: ${value}\r\n`;
  if (options.body !== undefined) {
    const bytes = new TextEncoder().encode(options.body);
    text += `Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n`;
    text += `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
    return concatBytes([new TextEncoder().encode(text), bytes]);
  }
  return new TextEncoder().encode(text + "\r\n");
}

/** The 101 that hands the connection to SPDY, naming the negotiated protocol. */
export function encodeSpdyUpgrade(protocol: string): Uint8Array {
  return encodeResponse(101, {
    headers: [
      ["Connection", "Upgrade"],
      ["Upgrade", "SPDY/3.1"],
      ["X-Stream-Protocol-Version", protocol],
    ],
  });
}

/** Writes all of `bytes` (a socket write may take part of them). */
export async function writeAll(conn: Pick<Deno.Conn, "write">, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
