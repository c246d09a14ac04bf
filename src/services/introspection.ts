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

/** Introspection reads the registry it is part of, so it is made with it. */
export function introspectionServicePlugin(registry: PluginRegistry): PluginDef<GrpcService> {
  return {
    type: grpcPluginType,
    id: "introspection",
    async init(ic) {
      const uuid = await loadOrCreateUuid(`${ic.root}/uuid`);
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
      return {
        register: (router) =>
          router.service(Introspection, {
            plugins: (req) => {
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
            },
            server: () => ({ uuid, pid: BigInt(Deno.pid), pidns: pidNamespace(), deprecations: [] }),
            pluginInfo: (req) => {
              const rec = registry.records.find((r) =>
                r.type === req.type && (req.id === "" || r.id === req.id)
              );
              if (!rec) throw notFound(`Plugin ${req.type}.${req.id} not found`);
              return { plugin: toProto(rec) };
            },
          }),
      };
    },
  };
}

async function loadOrCreateUuid(path: string): Promise<string> {
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (text) return text;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const uuid = crypto.randomUUID();
  // Written to a temp name and renamed so a crash never leaves an empty UUID behind.
  await Deno.writeTextFile(`${path}.tmp`, uuid + "\n");
  await Deno.rename(`${path}.tmp`, path);
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
