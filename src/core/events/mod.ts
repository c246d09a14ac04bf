import { now, type UnixNanos } from "../../base/clock.ts";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { invalidArgument, unavailable } from "../../base/errors.ts";
import type { PayloadDecoder } from "../../base/event_types.ts";
import type { Filter } from "../filters/mod.ts";

/** One event as it travels on the bus: containerd's `Envelope`. */
export interface Envelope {
  /** When the event happened, in nanoseconds since 1970 (containerd keeps Go's nanosecond times). */
  readonly timestamp: UnixNanos;
  readonly namespace: string;
  readonly topic: string;
  /** The payload; its type URL is the bare message name, as containerd's typeurl registry writes it. */
  readonly event: Any;
}

export interface EventPublisher {
  publish<D extends DescMessage>(
    namespace: string,
    topic: string,
    schema: D,
    event: MessageInitShape<D>,
  ): void;
}

export interface SubscribeOptions {
  filter?: Filter;
  signal?: AbortSignal;
}

/** How many envelopes a slow subscriber may fall behind before it is cut off. */
const maxBacklog = 10_000;

/**
 * The daemon's event exchange: services publish, shims forward, clients subscribe. Delivery is
 * in order per subscriber and never blocks a publisher.
 */
export class EventBus implements EventPublisher {
  readonly #subscribers = new Set<Subscriber>();
  readonly #decode: PayloadDecoder;

  constructor(options: { decode?: PayloadDecoder } = {}) {
    this.#decode = options.decode ?? (() => undefined);
  }

  publish<D extends DescMessage>(
    namespace: string,
    topic: string,
    schema: D,
    event: MessageInitShape<D>,
  ): void {
    const message = create(schema, event);
    const any = create(AnySchema, {
      typeUrl: schema.typeName,
      value: toBinary(schema, message),
    });
    this.forward({ timestamp: now(), namespace, topic, event: any });
  }

  /** Puts an envelope that was made elsewhere (a shim, a client's Publish) on the bus. */
  forward(envelope: Envelope): void {
    validateTopic(envelope.topic);
    for (const sub of this.#subscribers) sub.offer(envelope);
  }

  subscribe(options: SubscribeOptions = {}): AsyncIterableIterator<Envelope> {
    const sub = new Subscriber(options.filter, this.#decode, () => this.#subscribers.delete(sub));
    this.#subscribers.add(sub);
    options.signal?.addEventListener("abort", () => sub.close(), { once: true });
    if (options.signal?.aborted) sub.close();
    return sub;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }
}

export function validateTopic(topic: string): void {
  if (!topic.startsWith("/") || topic.length < 2) {
    throw invalidArgument(`Invalid event topic "${topic}": it must start with "/" and name the event`);
  }
  for (const part of topic.slice(1).split("/")) {
    if (!/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(part)) {
      throw invalidArgument(`Invalid event topic "${topic}": component "${part}" is not an identifier`);
    }
  }
}

class Subscriber implements AsyncIterableIterator<Envelope> {
  readonly #filter?: Filter;
  readonly #decode: PayloadDecoder;
  readonly #onClose: () => void;
  readonly #queue: Envelope[] = [];
  #waiter?: { resolve: (r: IteratorResult<Envelope>) => void; reject: (e: unknown) => void };
  #closed = false;
  #error?: Error;

  constructor(filter: Filter | undefined, decode: PayloadDecoder, onClose: () => void) {
    this.#filter = filter;
    this.#decode = decode;
    this.#onClose = onClose;
  }

  offer(envelope: Envelope): void {
    if (this.#closed) return;
    if (this.#filter && !this.#filter.match(envelopeAdaptor(envelope, this.#decode))) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve({ value: envelope, done: false });
      return;
    }
    if (this.#queue.length >= maxBacklog) {
      this.#error = unavailable(`Event subscriber fell ${maxBacklog} events behind and was disconnected`);
      this.close();
      return;
    }
    this.#queue.push(envelope);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w) {
      if (this.#error) w.reject(this.#error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Envelope>> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve({ value: queued, done: false });
    if (this.#closed) {
      return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Envelope>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Envelope> {
    return this;
  }
}

/** Fields of an envelope as containerd's filters see them: namespace, topic, event.<field>. */
function envelopeAdaptor(envelope: Envelope, decode: PayloadDecoder) {
  let payload: Record<string, unknown> | undefined | null = null;
  return (path: readonly string[]): string | undefined => {
    const [head, ...rest] = path;
    if (head === "namespace") return rest.length === 0 ? envelope.namespace : undefined;
    if (head === "topic") return rest.length === 0 ? envelope.topic : undefined;
    if (head !== "event") return undefined;
    if (payload === null) payload = decode(envelope.event);
    let value: unknown = payload;
    for (const part of rest) {
      if (typeof value !== "object" || value === null) return undefined;
      value = (value as Record<string, unknown>)[part];
    }
    if (value === undefined || value === null) return undefined;
    return typeof value === "string" ? value : JSON.stringify(value);
  };
}
