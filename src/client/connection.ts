import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { H2ClientConnection } from "../h2/client/mod.ts";
import { GrpcTransport } from "./grpc_transport.ts";
import { defaultNamespace } from "./defaults.ts";

export { defaultAddress, defaultNamespace } from "./defaults.ts";

export interface ClientOptions {
  /** Sent as `containerd-namespace` on every call. */
  namespace?: string;
  /** Per-call deadline in milliseconds (0: none). */
  timeoutMs?: number;
  /** Extra interceptors, e.g. to add a lease header. */
  interceptors?: Interceptor[];
}

/**
 * One connection to Berth's (or containerd's) API over the unix socket: gRPC over HTTP/2 cleartext, on
 * Berth's own HTTP/2 client (src/h2) rather than node:http2, which costs a CLI ~20 ms to load.
 * One connection carries every call (a new one follows a GOAWAY); close() ends it. It knows no service:
 * `service(desc)` types one, so a caller that imports only the descriptors it calls (the CLI's one-call
 * run) builds no others. BerthClient (mod.ts) adds a getter for each of containerd's services.
 */
export class ApiConnection {
  readonly address: string;
  readonly namespace: string;
  readonly transport: Transport;
  readonly #transport: GrpcTransport;
  readonly #clients = new Map<DescService, unknown>();

  constructor(address: string, options: ClientOptions = {}) {
    this.address = address;
    this.namespace = options.namespace ?? defaultNamespace;
    const namespace = this.namespace;
    const withNamespace: Interceptor = (next) => (req) => {
      if (!req.header.has("containerd-namespace")) req.header.set("containerd-namespace", namespace);
      return next(req);
    };
    this.#transport = new GrpcTransport({
      connect: () => H2ClientConnection.connect(address),
      interceptors: [withNamespace, ...(options.interceptors ?? [])],
      defaultTimeoutMs: options.timeoutMs || undefined,
      readMaxBytes: 16 << 20,
      writeMaxBytes: 16 << 20,
    });
    this.transport = this.#transport;
  }

  /** A typed client for any containerd API service. */
  service<S extends DescService>(desc: S): Client<S> {
    let c = this.#clients.get(desc) as Client<S> | undefined;
    if (!c) {
      c = createClient(desc, this.transport);
      this.#clients.set(desc, c);
    }
    return c;
  }

  close(): void {
    this.#transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
