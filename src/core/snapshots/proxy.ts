/**
 * A snapshotter served by another process: containerd's `[proxy_plugins.NAME] type = "snapshot"`. Berth
 * is a gRPC client of the remote's containerd.services.snapshots.v1.Snapshots API (stargz, nydus,
 * overlaybd, containerd's contrib/snapshotservice all serve it).
 *
 * The remote knows no namespaces: as containerd's metadata layer, Berth prefixes each key with its
 * namespace (`<ns>/<key>`, a namespace never holds a slash) and lists only its own namespace's keys back.
 * The connection is made on the first call and again after the remote went away, so a proxy that is
 * down at start-up or restarts later only fails the calls made while it is down, each saying so.
 */
import type { Client, Transport } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { BerthError, invalidArgument } from "../../base/errors.ts";
import { callProxy, type ProxyName, remoteName as remoteKey } from "../proxy/call.ts";
import { nanosFromTimestamp, timestampFromNanos } from "../../base/timestamps.ts";
import {
  type Info as InfoPb,
  Kind as KindPb,
  Snapshots,
} from "../../gen/services/snapshots/v1/snapshots_pb.ts";
import type { Mount as MountPb } from "../../gen/types/mount_pb.ts";
import { labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import type { Mount } from "../mount/mod.ts";
import type {
  CommitOptions,
  Info,
  Kind,
  PrepareOptions,
  Snapshotter,
  Usage,
  WalkOptions,
} from "./snapshotter.ts";

export interface ProxySnapshotterOptions {
  /** The proxy plugin's name (`[proxy_plugins.NAME]`), for errors. */
  readonly name: string;
  /** The remote's unix socket, for errors. */
  readonly address: string;
  /** A gRPC transport to the remote; closed with the snapshotter when it has close(). */
  readonly transport: Transport & { close?(): void };
}

const kindFromPb: Record<KindPb, Kind | undefined> = {
  [KindPb.UNKNOWN]: undefined,
  [KindPb.VIEW]: "view",
  [KindPb.ACTIVE]: "active",
  [KindPb.COMMITTED]: "committed",
};

const kindToPb: Record<Kind, KindPb> = {
  view: KindPb.VIEW,
  active: KindPb.ACTIVE,
  committed: KindPb.COMMITTED,
};

export class ProxySnapshotter implements Snapshotter {
  readonly #name: string;
  readonly #transport: ProxySnapshotterOptions["transport"];
  readonly #client: Client<typeof Snapshots>;
  readonly #proxy: ProxyName;

  constructor(options: ProxySnapshotterOptions) {
    this.#name = options.name;
    this.#proxy = { label: `Proxy snapshotter "${options.name}"`, address: options.address };
    this.#transport = options.transport;
    this.#client = createClient(Snapshots, options.transport);
  }

  async stat(ns: string, key: string): Promise<Info> {
    const r = await this.#call(() => this.#client.stat({ snapshotter: this.#name, key: remoteKey(ns, key) }));
    return this.#infoFromPb(ns, r.info);
  }

  async update(ns: string, info: Info, options: { fieldpaths?: readonly string[] } = {}): Promise<Info> {
    const r = await this.#call(() =>
      this.#client.update({
        snapshotter: this.#name,
        info: this.#infoToPb(ns, info),
        updateMask: { paths: [...(options.fieldpaths ?? [])] },
      })
    );
    return this.#infoFromPb(ns, r.info);
  }

  async usage(ns: string, key: string): Promise<Usage> {
    const r = await this.#call(() =>
      this.#client.usage({ snapshotter: this.#name, key: remoteKey(ns, key) })
    );
    return { size: Number(r.size), inodes: Number(r.inodes) };
  }

  async mounts(ns: string, key: string): Promise<Mount[]> {
    const r = await this.#call(() =>
      this.#client.mounts({ snapshotter: this.#name, key: remoteKey(ns, key) })
    );
    return r.mounts.map(mountFromPb);
  }

  async prepare(ns: string, key: string, options: PrepareOptions = {}): Promise<Mount[]> {
    const r = await this.#call(() => this.#client.prepare(this.#makeRequest(ns, key, options)));
    return r.mounts.map(mountFromPb);
  }

  async view(ns: string, key: string, options: PrepareOptions = {}): Promise<Mount[]> {
    const r = await this.#call(() => this.#client.view(this.#makeRequest(ns, key, options)));
    return r.mounts.map(mountFromPb);
  }

  async commit(ns: string, name: string, options: CommitOptions): Promise<void> {
    if (name === "") throw invalidArgument(`Cannot commit a snapshot on ${this.#name}: the name is empty`);
    await this.#call(() =>
      this.#client.commit({
        snapshotter: this.#name,
        name: remoteKey(ns, name),
        key: remoteKey(ns, options.key),
        labels: { ...options.labels },
      })
    );
  }

  async remove(ns: string, key: string): Promise<void> {
    await this.#call(() => this.#client.remove({ snapshotter: this.#name, key: remoteKey(ns, key) }));
  }

  async walk(ns: string, fn: (info: Info) => void | Promise<void>, options: WalkOptions = {}): Promise<void> {
    // The remote's filters would see prefixed names: it lists everything and Berth filters here.
    const filter = parseFilters(options.filters ?? []);
    const found: Info[] = [];
    await this.#call(async () => {
      for await (const r of this.#client.list({ snapshotter: this.#name }, { signal: options.signal })) {
        for (const pb of r.info) {
          if (!pb.name.startsWith(`${ns}/`)) continue;
          const info = this.#infoFromPb(ns, pb);
          const fields = {
            name: info.name,
            parent: info.parent,
            kind: info.kind,
            labels: labelsAdaptor(info.labels),
          };
          if (filter.match(objectAdaptor(fields))) found.push(info);
        }
      }
    });
    for (const info of found) {
      options.signal?.throwIfAborted();
      await fn(info);
    }
  }

  async cleanup(): Promise<void> {
    try {
      await this.#call(() => this.#client.cleanup({ snapshotter: this.#name }));
    } catch (err) {
      // containerd's snapshotservice answers Unimplemented for a snapshotter without Cleanup.
      if (!(err instanceof BerthError && err.kind === "not_implemented")) throw err;
    }
  }

  close(): Promise<void> {
    this.#transport.close?.();
    return Promise.resolve();
  }

  #makeRequest(ns: string, key: string, options: PrepareOptions) {
    // The remote would take "<ns>/" for a key: refused here, as containerd's metadata layer does.
    if (key === "") throw invalidArgument(`Cannot create a snapshot on ${this.#name}: the key is empty`);
    return {
      snapshotter: this.#name,
      key: remoteKey(ns, key),
      parent: options.parent ? remoteKey(ns, options.parent) : "",
      labels: { ...options.labels },
    };
  }

  /** Runs one call, its wire error turned into the core's kind, an unreachable remote named. */
  #call<T>(fn: () => Promise<T>): Promise<T> {
    return callProxy(this.#proxy, fn);
  }

  #infoFromPb(ns: string, pb: InfoPb | undefined): Info {
    if (!pb) throw new BerthError("internal", `Proxy snapshotter "${this.#name}" answered without info`);
    const kind = kindFromPb[pb.kind];
    if (!kind) {
      throw new BerthError(
        "internal",
        `Proxy snapshotter "${this.#name}" answered kind ${pb.kind} for ${pb.name}`,
      );
    }
    return {
      name: localKey(ns, pb.name),
      parent: pb.parent === "" ? "" : localKey(ns, pb.parent),
      kind,
      labels: { ...pb.labels },
      created: nanosFromTimestamp(pb.createdAt),
      updated: nanosFromTimestamp(pb.updatedAt),
    };
  }

  #infoToPb(ns: string, info: Info) {
    return {
      name: remoteKey(ns, info.name),
      parent: info.parent === "" ? "" : remoteKey(ns, info.parent),
      kind: kindToPb[info.kind],
      labels: { ...info.labels },
      createdAt: timestampFromNanos(info.created),
      updatedAt: timestampFromNanos(info.updated),
    };
  }
}

function localKey(ns: string, remote: string): string {
  return remote.startsWith(`${ns}/`) ? remote.slice(ns.length + 1) : remote;
}

function mountFromPb(m: MountPb): Mount {
  return { type: m.type, source: m.source, target: m.target, options: [...m.options] };
}
