import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { H2ClientConnection } from "../h2/client/mod.ts";
import { GrpcTransport } from "./grpc_transport.ts";
import { Transfer } from "../gen/berth/transfer/v1/transfer_pb.ts";
import { Content } from "../gen/services/content/v1/content_pb.ts";
import { Containers } from "../gen/services/containers/v1/containers_pb.ts";
import { Events } from "../gen/services/events/v1/events_pb.ts";
import { Images } from "../gen/services/images/v1/images_pb.ts";
import { Introspection } from "../gen/services/introspection/v1/introspection_pb.ts";
import { Leases } from "../gen/services/leases/v1/leases_pb.ts";
import { Namespaces } from "../gen/services/namespaces/v1/namespace_pb.ts";
import { Snapshots } from "../gen/services/snapshots/v1/snapshots_pb.ts";
import { Tasks } from "../gen/services/tasks/v1/tasks_pb.ts";
import { Version } from "../gen/services/version/v1/version_pb.ts";

export const defaultAddress = "/run/berth/berth.sock";
export const defaultNamespace = "default";

export interface ClientOptions {
  /** Sent as `containerd-namespace` on every call. */
  namespace?: string;
  /** Per-call deadline in milliseconds (0: none). */
  timeoutMs?: number;
  /** Extra interceptors, e.g. to add a lease header. */
  interceptors?: Interceptor[];
}

/**
 * A typed client of Berth's (or containerd's) API over the unix socket: gRPC over HTTP/2 cleartext, on
 * Berth's own HTTP/2 client (src/h2) rather than node:http2, which costs a CLI ~20 ms to load.
 * One connection carries every call (a new one follows a GOAWAY); close() ends it.
 */
export class BerthClient {
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

  get version(): Client<typeof Version> {
    return this.service(Version);
  }
  get namespaces(): Client<typeof Namespaces> {
    return this.service(Namespaces);
  }
  get introspection(): Client<typeof Introspection> {
    return this.service(Introspection);
  }
  get events(): Client<typeof Events> {
    return this.service(Events);
  }
  get containers(): Client<typeof Containers> {
    return this.service(Containers);
  }
  get tasks(): Client<typeof Tasks> {
    return this.service(Tasks);
  }
  get content(): Client<typeof Content> {
    return this.service(Content);
  }
  get images(): Client<typeof Images> {
    return this.service(Images);
  }
  get leases(): Client<typeof Leases> {
    return this.service(Leases);
  }
  get snapshots(): Client<typeof Snapshots> {
    return this.service(Snapshots);
  }
  /** Berth's own Transfer service (pull and push in the daemon). */
  get transfer(): Client<typeof Transfer> {
    return this.service(Transfer);
  }

  close(): void {
    this.#transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
