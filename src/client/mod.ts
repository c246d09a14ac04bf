import type { Client } from "@connectrpc/connect";
import { ApiConnection } from "./connection.ts";
import { Run } from "../gen/berth/run/v1/run_pb.ts";
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

export { ApiConnection, type ClientOptions, defaultAddress, defaultNamespace } from "./connection.ts";

/** A typed client of Berth's (or containerd's) API: an ApiConnection with a getter for each service. */
export class BerthClient extends ApiConnection {
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

  /** Berth's own Run service (`ctr run` in one call). */
  get run(): Client<typeof Run> {
    return this.service(Run);
  }
}
