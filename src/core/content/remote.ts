/**
 * A content store served by another process: containerd's `[proxy_plugins.NAME] type = "content"`.
 * Berth is a gRPC client of the remote's containerd.services.content.v1.Content API (containerd's own
 * contentserver serves it) and uses it as containerd's metadata store uses a backend: blobs by digest,
 * ingests under names that carry their namespace, no labels (those stay in Berth's database).
 *
 * The connection is made on the first call and again after the remote went away, so a proxy that is
 * down at start-up or restarts later only fails the calls made while it is down, each saying so.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { now, type UnixNanos } from "../../base/clock.ts";
import { BerthError, errorKind, invalidArgument } from "../../base/errors.ts";
import { nanosFromTimestamp } from "../../base/timestamps.ts";
import {
  Content,
  WriteAction,
  type WriteContentRequestSchema,
  type WriteContentResponse,
} from "../../gen/services/content/v1/content_pb.ts";
import { parseDigest } from "../../oci/digest.ts";
import { callProxy, proxyError, type ProxyName, remoteName, splitRemoteName } from "../proxy/call.ts";
import {
  type BackendWriter,
  type BackendWriterOptions,
  type Committed,
  type IngestKey,
  type SweptContentBackend,
  verifyCommit,
} from "./backend.ts";
import type { ReaderAt, Status } from "./types.ts";

export interface RemoteContentBackendOptions {
  /** The proxy plugin's name (`[proxy_plugins.NAME]`), for errors. */
  readonly name: string;
  /** The remote's unix socket, for errors. */
  readonly address: string;
  /** A gRPC transport to the remote; closed with the backend when it has close(). */
  readonly transport: Transport & { close?(): void };
  /**
   * How long the remote may take to answer one message of a Write or Read stream (ms; 5 min by
   * default). A stream as a whole has no deadline: a layer takes as long as its download or unpack.
   */
  readonly idleTimeoutMs?: number;
}

/** Write messages carry at most this much: gRPC servers accept 4 MiB messages by default. */
const WRITE_CHUNK = 1 << 20;

const IDLE_TIMEOUT_MS = 5 * 60_000;

type WriteRequest = MessageInitShape<typeof WriteContentRequestSchema>;

export class RemoteContentBackend implements SweptContentBackend {
  readonly kind = "swept";
  readonly #proxy: ProxyName;
  readonly #transport: RemoteContentBackendOptions["transport"];
  readonly #client: Client<typeof Content>;
  readonly #idleMs: number;

  constructor(options: RemoteContentBackendOptions) {
    this.#proxy = { label: `Proxy content store "${options.name}"`, address: options.address };
    this.#transport = options.transport;
    this.#client = createClient(Content, options.transport);
    this.#idleMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  }

  get description(): string {
    return `${this.#proxy.label} at ${this.#proxy.address}`;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const r = await this.#call(() => this.#client.info({ digest }));
      return Number(r.info?.size ?? 0n);
    } catch (err) {
      if (errorKind(err) === "not_found") return undefined;
      throw err;
    }
  }

  readerAt(digest: string, size: number): Promise<ReaderAt> {
    return Promise.resolve({
      size,
      readAt: async (buf: Uint8Array, offset: number) => {
        let n = 0;
        for await (const data of this.read(digest, { offset, size: buf.length })) {
          const take = Math.min(data.length, buf.length - n);
          buf.set(data.subarray(0, take), n);
          n += take;
        }
        return n;
      },
      close() {},
    });
  }

  async *read(
    digest: string,
    options: { offset: number; size: number; signal?: AbortSignal },
  ): AsyncGenerator<Uint8Array> {
    const abort = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
    const responses = this.#client.read(
      { digest, offset: BigInt(options.offset), size: BigInt(options.size) },
      { signal, timeoutMs: 0 },
    )[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await this.#withinIdle(abort, () => responses.next());
        if (r.done) return;
        yield r.value.data;
      }
    } catch (err) {
      options.signal?.throwIfAborted();
      throw proxyError(this.#proxy, err);
    } finally {
      abort.abort();
    }
  }

  async writer(key: IngestKey, options: BackendWriterOptions): Promise<BackendWriter> {
    const name = remoteName(key.namespace, key.ref);
    if (options.fresh || options.copyOf !== undefined) await this.abortName(name);
    const w = new RemoteIngestWriter(this.#proxy, this.#client, {
      ref: key.ref,
      name,
      idleMs: this.#idleMs,
    });
    // The backend is not told the expected digest, as containerd's metadata store does not tell it:
    // the namespace's own records decide whether content exists, and the commit checks the digest.
    try {
      await w.open(options.copyOf?.size ?? options.total, options.expected);
    } catch (err) {
      // containerd's clients (content.OpenWriter) read Unavailable from a writer as "another writer
      // holds the ref" and retry until their context ends: `ctr pull` would wait forever for a proxy
      // that is down. The same error, named by the proxy, as a failed precondition.
      if (errorKind(err) !== "unavailable") throw err;
      throw new BerthError("failed_precondition", (err as Error).message, { cause: err });
    }
    try {
      if (options.copyOf !== undefined) {
        for await (const data of this.read(options.copyOf.digest, { offset: 0, size: 0 })) {
          await w.write(data);
        }
      }
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  async status(key: IngestKey): Promise<Status | undefined> {
    try {
      const r = await this.#call(() => this.#client.status({ ref: remoteName(key.namespace, key.ref) }));
      const st = r.status;
      if (st === undefined) return undefined;
      return {
        ref: key.ref,
        offset: Number(st.offset),
        total: Number(st.total),
        expected: st.expected,
        startedAt: nanosFromTimestamp(st.startedAt),
        updatedAt: nanosFromTimestamp(st.updatedAt),
      };
    } catch (err) {
      if (errorKind(err) === "not_found") return undefined;
      throw err;
    }
  }

  async abort(key: IngestKey): Promise<boolean> {
    try {
      await this.#call(() => this.#client.abort({ ref: remoteName(key.namespace, key.ref) }));
      return true;
    } catch (err) {
      if (errorKind(err) === "not_found") return false;
      throw err;
    }
  }

  async abortName(name: string): Promise<void> {
    try {
      await this.#call(() => this.#client.abort({ ref: name }));
    } catch (err) {
      if (errorKind(err) !== "not_found") throw err;
    }
  }

  async deleteBlob(digest: string): Promise<void> {
    try {
      await this.#call(() => this.#client.delete({ digest }));
    } catch (err) {
      if (errorKind(err) !== "not_found") throw err;
    }
  }

  blobs(): Promise<string[]> {
    return this.#call(async () => {
      const out: string[] = [];
      for await (const r of this.#client.list({})) for (const info of r.info) out.push(info.digest);
      return out;
    });
  }

  async ingests(): Promise<{ name: string; key?: IngestKey }[]> {
    const r = await this.#call(() => this.#client.listStatuses({}));
    return r.statuses.map((st) => {
      const split = splitRemoteName(st.ref);
      return split
        ? { name: st.ref, key: { namespace: split.namespace, ref: split.name } }
        : { name: st.ref };
    });
  }

  close(): void {
    this.#transport.close?.();
  }

  #call<T>(fn: () => Promise<T>): Promise<T> {
    return callProxy(this.#proxy, fn);
  }

  /** Runs `fn`, aborting the stream when the remote has not answered within the idle deadline. */
  async #withinIdle<T>(abort: AbortController, fn: () => Promise<T>): Promise<T> {
    return await withinIdle(this.#idleMs, abort, fn);
  }
}

/**
 * One ingest on the remote: a Write stream, as containerd's remote writer drives it. Each message gets
 * one answer carrying the remote's offset and the digest of what it holds so far.
 */
class RemoteIngestWriter implements BackendWriter {
  readonly #proxy: ProxyName;
  readonly #client: Client<typeof Content>;
  readonly #ref: string;
  readonly #name: string;
  readonly #idleMs: number;
  readonly #abort = new AbortController();
  readonly #queue: WriteRequest[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #responses: AsyncIterator<WriteContentResponse> | undefined;
  #offset = 0;
  #total = 0;
  #expected = "";
  #digest = "";
  #startedAt: UnixNanos = now();
  #updatedAt: UnixNanos = this.#startedAt;

  constructor(
    proxy: ProxyName,
    client: Client<typeof Content>,
    options: { ref: string; name: string; idleMs: number },
  ) {
    this.#proxy = proxy;
    this.#client = client;
    this.#ref = options.ref;
    this.#name = options.name;
    this.#idleMs = options.idleMs;
  }

  /** Opens the stream and learns where the remote's ingest of this name stands (resumed or new). */
  async open(total: number, expected: string): Promise<void> {
    this.#responses = this.#client.write(this.#requests(), { signal: this.#abort.signal, timeoutMs: 0 })[
      Symbol.asyncIterator
    ]();
    const r = await this.#send({ action: WriteAction.STAT, ref: this.#name, total: BigInt(total) });
    this.#offset = Number(r.offset);
    this.#total = total || Number(r.total);
    this.#expected = expected;
    this.#digest = r.digest;
    if (r.startedAt) this.#startedAt = nanosFromTimestamp(r.startedAt);
    if (r.updatedAt) this.#updatedAt = nanosFromTimestamp(r.updatedAt);
  }

  async write(data: Uint8Array): Promise<void> {
    for (let at = 0; at < data.length; at += WRITE_CHUNK) {
      const part = data.subarray(at, at + WRITE_CHUNK);
      const r = await this.#send({ action: WriteAction.WRITE, offset: BigInt(this.#offset), data: part });
      if (Number(r.offset) !== this.#offset + part.length) {
        throw proxyError(
          this.#proxy,
          new ConnectError(`Wrote ${Number(r.offset) - this.#offset} of ${part.length} bytes`, Code.DataLoss),
        );
      }
      this.#offset += part.length;
      this.#digest = r.digest;
      this.#updatedAt = now();
    }
  }

  async truncate(size: number): Promise<void> {
    if (size !== 0) throw invalidArgument(`Cannot truncate ref ${this.#ref} to ${size}: only 0 is supported`);
    // A write at offset 0 makes the remote start over.
    const r = await this.#send({ action: WriteAction.WRITE, offset: 0n });
    this.#offset = 0;
    this.#digest = r.digest;
    this.#updatedAt = now();
  }

  digest(): string {
    return this.#digest;
  }

  status(): Status {
    return {
      ref: this.#ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#expected,
      startedAt: this.#startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  async commit(size: number, expected: string): Promise<Committed> {
    try {
      // Refused here with the local store's words where the remote's answers already tell; a digest of
      // another algorithm is the remote's to check.
      const sameAlgorithm = expected !== "" && this.#digest !== "" &&
        parseDigest(expected).algorithm === parseDigest(this.#digest).algorithm;
      verifyCommit(this.#ref, { size, expected: sameAlgorithm ? expected : "" }, {
        size: this.#offset,
        digest: this.#digest,
      });
      let digest: string;
      try {
        const r = await this.#send({
          action: WriteAction.COMMIT,
          offset: BigInt(this.#offset),
          total: BigInt(size),
          expected,
        });
        digest = r.digest;
      } catch (err) {
        // The remote holds the blob already (another namespace's, or one it kept): as good as committed.
        if (errorKind(err) !== "already_exists") throw err;
        digest = expected || this.#digest;
      }
      return { digest, size: this.#offset, place() {} };
    } finally {
      await this.close();
    }
  }

  /** The remote removed its ingest when it committed (or found the blob present). */
  discard(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** Ends the stream and waits for the remote to close its writer, so that the ref can be taken again. */
  async close(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#wake?.();
    try {
      const responses = this.#responses;
      if (responses !== undefined) {
        while (!(await withinIdle(this.#idleMs, this.#abort, () => responses.next())).done) { /* drained */ }
      }
    } catch {
      /* the stream failed already: nothing is left to close */
    } finally {
      this.#abort.abort();
    }
  }

  async *#requests(): AsyncGenerator<WriteRequest> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
  }

  /** Sends one message and waits for its answer. */
  async #send(req: WriteRequest): Promise<WriteContentResponse> {
    if (this.#ended) throw new Error(`Writer for ref ${this.#ref} is closed`);
    this.#queue.push(req);
    this.#wake?.();
    try {
      const r = await withinIdle(this.#idleMs, this.#abort, () => this.#responses!.next());
      if (r.done) throw new ConnectError("The remote ended the write stream", Code.Unavailable);
      return r.value;
    } catch (err) {
      this.#ended = true;
      this.#abort.abort();
      throw proxyError(this.#proxy, err);
    }
  }
}

/**
 * Runs `fn` (one message of a stream); past `ms` the stream is aborted and the wait fails as a
 * deadline, which names the proxy as unreachable.
 */
async function withinIdle<T>(ms: number, abort: AbortController, fn: () => Promise<T>): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, ms);
  try {
    return await fn();
  } catch (err) {
    if (timedOut) throw new ConnectError(`No answer within ${ms / 1000}s`, Code.DeadlineExceeded);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
