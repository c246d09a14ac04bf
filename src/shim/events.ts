/**
 * Publishes task events to the daemon with ttrpc Events.Forward on its `<address>.ttrpc` socket. Events
 * are queued and sent in order; while the daemon is down (restarting, upgrading) they wait and are
 * retried with backoff, so a restarted daemon still learns of the exits it missed.
 */

import { timestampFromNanos } from "../base/timestamps.ts";
import { now } from "../base/clock.ts";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { Events } from "../gen/services/ttrpc/events/v1/events_pb.ts";
import { EnvelopeSchema } from "../gen/types/event_pb.ts";
import { createTtrpcClient, NAMESPACE_METADATA_KEY, TtrpcClient } from "../ttrpc/mod.ts";
import type { Envelope } from "../gen/types/event_pb.ts";

/** Topics of the task events, as containerd's runtime package names them. */
export const Topic = {
  create: "/tasks/create",
  start: "/tasks/start",
  exit: "/tasks/exit",
  delete: "/tasks/delete",
  paused: "/tasks/paused",
  resumed: "/tasks/resumed",
  execAdded: "/tasks/exec-added",
  execStarted: "/tasks/exec-started",
  oom: "/tasks/oom",
  checkpointed: "/tasks/checkpointed",
} as const;

/** An Any under the bare type name (no type.googleapis.com/ prefix), as containerd's typeurl writes it. */
export function packBare<S extends DescMessage>(schema: S, message: MessageShape<S>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, message) });
}

export interface EventSink {
  publish<S extends DescMessage>(topic: string, schema: S, event: MessageShape<S>): void;
}

export interface PublisherOptions {
  /** Most events kept while the daemon is unreachable; the oldest go first when it is exceeded. */
  readonly maxQueued?: number;
  readonly log?: (msg: string) => void;
}

const MAX_BACKOFF_MS = 2_000;

export class EventPublisher implements EventSink {
  readonly #address: string;
  readonly #namespace: string;
  readonly #queue: Envelope[] = [];
  readonly #maxQueued: number;
  readonly #log: (msg: string) => void;
  #client: TtrpcClient | undefined;
  #draining: Promise<void> | undefined;
  #closed = false;
  #idle: (() => void)[] = [];

  /** `address` is the daemon's ttrpc socket (TTRPC_ADDRESS); empty disables publishing. */
  constructor(address: string, namespace: string, options: PublisherOptions = {}) {
    this.#address = address;
    this.#namespace = namespace;
    this.#maxQueued = options.maxQueued ?? 4096;
    this.#log = options.log ?? (() => {});
  }

  publish<S extends DescMessage>(topic: string, schema: S, event: MessageShape<S>): void {
    if (!this.#address || this.#closed) return;
    const any = packBare(schema, event);
    this.#queue.push(create(EnvelopeSchema, {
      timestamp: timestampFromNanos(now()),
      namespace: this.#namespace,
      topic,
      event: any,
    }));
    if (this.#queue.length > this.#maxQueued) this.#queue.shift();
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      for (const f of this.#idle.splice(0)) f();
    });
  }

  /** Resolves once every queued event has been sent (or the publisher is closed). */
  flush(): Promise<void> {
    if (!this.#draining) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Gives queued events up to `graceMs` to go out, then stops. */
  async close(graceMs = 1_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.flush(), new Promise((r) => timer = setTimeout(r, graceMs))]);
    clearTimeout(timer);
    this.#closed = true;
    this.#client?.close();
  }

  async #drain(): Promise<void> {
    let backoff = 50;
    while (this.#queue.length > 0 && !this.#closed) {
      const envelope = this.#queue[0]!;
      try {
        const client = await this.#connect();
        await createTtrpcClient(Events, client).forward({ envelope }, { timeoutMs: 5_000 });
        this.#queue.shift();
        backoff = 50;
      } catch (err) {
        this.#client?.close();
        this.#client = undefined;
        this.#log(`Cannot forward event ${envelope.topic} to ${this.#address}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async #connect(): Promise<TtrpcClient> {
    if (this.#client) return this.#client;
    const client = await TtrpcClient.connect(this.#address, {
      metadata: { [NAMESPACE_METADATA_KEY]: this.#namespace },
    });
    client.closed.then(() => {
      if (this.#client === client) this.#client = undefined;
    });
    this.#client = client;
    return client;
  }
}
