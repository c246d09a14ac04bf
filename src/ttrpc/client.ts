/**
 * A ttrpc client over one unix socket connection: unary calls multiplexed on odd, increasing stream ids.
 * Every call has a deadline (sent to the server as timeout_nano too); when the connection ends, pending
 * and later calls fail with "unavailable".
 */

import { create, type DescMessage, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { FrameReader, FrameWriter, MAX_MESSAGE_LENGTH, MessageType } from "./frame.ts";
import { decodeResponse, encodeRequest, type Metadata } from "./messages.ts";
import { Code, TtrpcError } from "./status.ts";

/** containerd carries the namespace of a shim call in this metadata key (namespaces.TTRPCHeader). */
export const NAMESPACE_METADATA_KEY = "containerd-namespace-ttrpc";
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Deadline of this call; DEFAULT_CALL_TIMEOUT_MS (or the client's default) when absent. */
  readonly timeoutMs?: number;
  readonly metadata?: Readonly<Record<string, string | readonly string[]>>;
}

export interface ConnectOptions {
  readonly signal?: AbortSignal;
  /** Default deadline of every call on this client. */
  readonly timeoutMs?: number;
  /** Sent with every call, under the call's own metadata (e.g. the containerd namespace). */
  readonly metadata?: Readonly<Record<string, string | readonly string[]>>;
}

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: Error): void;
}

/** Strips containerd's "unix://" address scheme; a bare path passes through. */
export function socketPath(address: string): string {
  return address.startsWith("unix://") ? address.slice("unix://".length) : address;
}

export class TtrpcClient {
  readonly #conn: Deno.Conn;
  readonly #name: string;
  readonly #writer: FrameWriter;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  readonly #metadata: Metadata;
  readonly #closed: Promise<void>;
  #nextStreamId = 1;
  #closedError: TtrpcError | undefined;

  /** Connects to a ttrpc server at a unix socket path or "unix://" address. */
  static async connect(address: string, options: ConnectOptions = {}): Promise<TtrpcClient> {
    const path = socketPath(address);
    options.signal?.throwIfAborted();
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (err) {
      const code = err instanceof Deno.errors.NotFound ? Code.notFound : Code.unavailable;
      throw new TtrpcError(code, `Cannot connect to ttrpc server ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new TtrpcClient(conn, { ...options, name: path });
  }

  /** Wraps an already connected stream (e.g. one end of a socket pair in tests). */
  constructor(conn: Deno.Conn, options: ConnectOptions & { name?: string } = {}) {
    this.#conn = conn;
    this.#name = options.name ?? "peer";
    this.#writer = new FrameWriter(conn);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.#metadata = toMetadata(options.metadata);
    this.#closed = this.#readLoop();
  }

  /** Settles when the connection has ended, for whatever reason. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Calls a unary method with an already encoded payload; resolves to the encoded response payload. */
  invoke(
    service: string,
    method: string,
    payload: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const what = `${service}/${method}`;
    if (this.#closedError) {
      return Promise.reject(
        new TtrpcError(Code.unavailable, `Cannot call ${what}: ${this.#closedError.message}`),
      );
    }
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (this.#nextStreamId > 0xffff_ffff) {
      return Promise.reject(
        new TtrpcError(Code.unavailable, `Cannot call ${what}: stream ids of ${this.#name} exhausted`),
      );
    }
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const body = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: BigInt(Math.max(1, Math.round(timeoutMs))) * 1_000_000n,
      metadata: { ...this.#metadata, ...toMetadata(options.metadata) },
    });
    if (body.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(
        new TtrpcError(
          Code.resourceExhausted,
          `Cannot call ${what}: message length ${body.length} exceeds maximum message size of ${MAX_MESSAGE_LENGTH}`,
        ),
      );
    }

    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => finish(() => reject(options.signal!.reason));
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new TtrpcError(
                Code.deadlineExceeded,
                `Call ${what} to ${this.#name} timed out after ${timeoutMs} ms`,
              ),
            )
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        // A late response for a stream we gave up on finds no entry and is dropped.
        this.#pending.delete(streamId);
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        settle();
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(streamId, {
        resolve: (p) => finish(() => resolve(p)),
        reject: (e) => finish(() => reject(e)),
      });
      this.#writer.write(streamId, MessageType.request, 0, body).catch((err) => {
        // A partial frame would corrupt the stream for every other call: give up the connection.
        this.#fail(`write to ${this.#name} failed: ${(err as Error).message}`);
      });
    });
  }

  /** Calls a unary method of a service descriptor by its local name (as in `Task.method.state`). */
  async call<S extends DescService, K extends keyof S["method"] & string>(
    service: S,
    method: K,
    request: MessageInitShape<S["method"][K]["input"]>,
    options?: CallOptions,
  ): Promise<MessageShape<S["method"][K]["output"]>> {
    const desc = service.method[method];
    if (!desc) {
      throw new TtrpcError(Code.unimplemented, `Service ${service.typeName} has no method ${method}`);
    }
    const input = desc.input as DescMessage;
    const payload = toBinary(input, create(input, request as MessageInitShape<DescMessage>));
    const out = await this.invoke(service.typeName, desc.name, payload, options);
    try {
      return fromBinary(desc.output, out) as MessageShape<S["method"][K]["output"]>;
    } catch (err) {
      throw new TtrpcError(Code.internal, `Cannot decode response of ${service.typeName}/${desc.name}`, {
        cause: err,
      });
    }
  }

  /** Closes the connection; pending calls fail with "unavailable". */
  close(): void {
    this.#fail(`connection to ${this.#name} closed by client`);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #readLoop(): Promise<void> {
    const reader = new FrameReader(this.#conn);
    let reason = `connection to ${this.#name} closed by server`;
    try {
      for (;;) {
        const frame = await reader.next();
        if (frame === null) break;
        if (frame.type !== MessageType.response) continue; // no client streams yet: data frames are dropped
        const pending = this.#pending.get(frame.streamId);
        if (!pending) continue;
        if (frame.data === undefined) {
          pending.reject(
            new TtrpcError(
              Code.resourceExhausted,
              `Response of stream ${frame.streamId} from ${this.#name} exceeds maximum message size of ${MAX_MESSAGE_LENGTH}`,
            ),
          );
          continue;
        }
        let response;
        try {
          response = decodeResponse(frame.data);
        } catch (err) {
          pending.reject(
            new TtrpcError(Code.internal, `Cannot decode ttrpc response from ${this.#name}`, { cause: err }),
          );
          continue;
        }
        const status = response.status;
        if (status && status.code !== Code.ok) pending.reject(new TtrpcError(status.code, status.message));
        else pending.resolve(response.payload);
      }
    } catch (err) {
      if (!this.#closedError) reason = `connection to ${this.#name} failed: ${(err as Error).message}`;
    }
    this.#fail(reason);
  }

  #fail(reason: string): void {
    if (this.#closedError) return;
    this.#closedError = new TtrpcError(Code.unavailable, reason);
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer
    }
    for (const pending of [...this.#pending.values()]) {
      pending.reject(new TtrpcError(Code.unavailable, `Call failed: ${reason}`));
    }
  }
}

export type TtrpcServiceClient<S extends DescService> = {
  [K in keyof S["method"]]: (
    request: MessageInitShape<S["method"][K]["input"]>,
    options?: CallOptions,
  ) => Promise<MessageShape<S["method"][K]["output"]>>;
};

/** Typed methods for a service, like Connect's createClient: `createTtrpcClient(Task, client).state({id})`. */
export function createTtrpcClient<S extends DescService>(
  service: S,
  client: TtrpcClient,
): TtrpcServiceClient<S> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(service.method)) {
    out[name] = (request: never, options?: CallOptions) => client.call(service, name, request, options);
  }
  return out as TtrpcServiceClient<S>;
}

function toMetadata(md: Readonly<Record<string, string | readonly string[]>> | undefined): Metadata {
  const out: Metadata = {};
  for (const [k, v] of Object.entries(md ?? {})) out[k] = typeof v === "string" ? [v] : [...v];
  return out;
}
