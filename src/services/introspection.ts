import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { parseFilters } from "../core/filters/mod.ts";
import { notFound } from "../base/errors.ts";
import {
  Introspection,
  type Plugin,
  PluginSchema,
} from "../gen/services/introspection/v1/introspection_pb.ts";
import type { GrpcService, PluginDef, PluginRecord, PluginRegistry } from "../plugins/registry.ts";
import { grpcPluginType } from "../plugins/ids.ts";

/**
 * Introspection reads the registry it is part of, so it is made with it. It starts early: Server is what
 * clients such as `ctr version` ask first. Plugins and PluginInfo are served once every plugin has started
 * (registerLater), so that they list each as it ended up.
 */
export function introspectionServicePlugin(registry: PluginRegistry): PluginDef<GrpcService> {
  return {
    type: grpcPluginType,
    id: "introspection",
    early: true,
    init(ic) {
      const uuid = loadOrCreateUuid(`${ic.root}/uuid`);
      const platform = hostPlatform();
      const toProto = (r: PluginRecord): Plugin =>
        create(PluginSchema, {
          type: r.type,
          id: r.id,
          requires: [...r.requires],
          exports: r.exports,
          platforms:
            r.type.startsWith("io.containerd.snapshotter.") || r.type.startsWith("io.containerd.runtime.")
              ? [platform]
              : [],
          // ctr shows "skip" when the message contains containerd's "skip plugin".
          initErr: r.status === "ok" ? undefined : {
            code: r.status === "skip" ? Code.Unimplemented : Code.Unknown,
            message: r.status === "skip" ? `skip plugin: ${r.error ?? "skipped"}` : r.error ?? "failed",
          },
        });
      const m = Introspection.method;
      return {
        register: (router) =>
          router.rpc(
            m.server,
            () => ({ uuid, pid: BigInt(Deno.pid), pidns: pidNamespace(), deprecations: [] }),
          ),
        registerLater: (router) =>
          router
            .rpc(m.plugins, (req) => {
              const filter = parseFilters(req.filters);
              const plugins = registry.records.filter((r) =>
                filter.match((path) => {
                  if (path.length !== 1) return undefined;
                  if (path[0] === "type") return r.type;
                  if (path[0] === "id") return r.id;
                  if (path[0] === "status") return r.status;
                  return undefined;
                })
              ).map(toProto);
              return { plugins };
            })
            .rpc(m.pluginInfo, (req) => {
              const rec = registry.records.find((r) =>
                r.type === req.type && (req.id === "" || r.id === req.id)
              );
              if (!rec) throw notFound(`Plugin ${req.type}.${req.id} not found`);
              return { plugin: toProto(rec) };
            }),
      };
    },
  };
}

/** Synchronous: a few µs each, where Deno's async file writes load its streams code first (~3 ms). */
function loadOrCreateUuid(path: string): string {
  try {
    const text = Deno.readTextFileSync(path).trim();
    if (text) return text;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const uuid = crypto.randomUUID();
  // Written to a temp name and renamed so a crash never leaves an empty UUID behind.
  Deno.writeTextFileSync(`${path}.tmp`, uuid + "\n");
  Deno.renameSync(`${path}.tmp`, path);
  return uuid;
}

function pidNamespace(): bigint {
  try {
    const link = Deno.readLinkSync("/proc/self/ns/pid");
    const m = /\[(\d+)\]/.exec(link);
    return m ? BigInt(m[1]!) : 0n;
  } catch {
    return 0n;
  }
}

export function hostPlatform() {
  const arch = Deno.build.arch === "x86_64"
    ? "amd64"
    : Deno.build.arch === "aarch64"
    ? "arm64"
    : Deno.build.arch;
  return { os: Deno.build.os, architecture: arch, variant: arch === "arm64" ? "v8" : "" };
}
