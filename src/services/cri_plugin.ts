/**
 * `io.containerd.grpc.v1.cri`, configured by `[plugins."io.containerd.grpc.v1.cri"]` with containerd's
 * keys (src/core/cri/config.ts). It needs the transfer plugin (pulls and unpacks) and the snapshotters.
 *
 * Its code loads on the first CRI call (measured: the CRI's generated API and its modules cost ~50 ms of
 * every daemon start and ~6 MiB of idle memory on a host that runs no pods), or at start when k8s.io holds
 * containers to recover. A call that comes while it loads waits for it.
 */
import { invalidArgument } from "../base/errors.ts";
import {
  CRI_CONFIG_KEYS,
  CRI_NAMESPACE,
  type CriConfig,
  parseCriConfig,
  unimplementedSettings,
} from "../core/cri/config.ts";
import type { ContainerStore } from "../core/containers/mod.ts";
import { runtimeOptions } from "../core/cri/runtime_options.ts";
import type { NamedRuntime, TaskManager } from "../core/runtime/mod.ts";
import {
  containerStorePluginId,
  containerStorePluginType,
  criPluginId,
  eventsPluginType,
  grpcPluginType,
  runtimePluginId,
  runtimePluginType,
  snapshotterPluginType,
  transferPluginType,
} from "../plugins/ids.ts";
import type { GrpcService, InitContext, PluginDef } from "../plugins/registry.ts";
import type { StartedCri } from "./cri.ts";

/** The CRI's request paths: runtime.v1.RuntimeService and runtime.v1.ImageService. */
const CRI_PATH_PREFIXES = ["/runtime.v1."] as const;

export const criServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: criPluginId,
  requires: [
    transferPluginType,
    snapshotterPluginType,
    containerStorePluginType,
    runtimePluginType,
    eventsPluginType,
  ],
  configKeys: CRI_CONFIG_KEYS,
  async init(ic) {
    // Everything a config can get wrong is checked now, so a daemon with a bad one fails at start.
    const config = parseCriConfig(ic.config);
    for (const key of unimplementedSettings(ic.config)) {
      ic.log.warn("CRI setting is not implemented by Berth and is ignored", { key });
    }
    const port = Number(config.streamServerPort);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw invalidArgument(
        `Invalid CRI config "stream_server_port": "${config.streamServerPort}" is not a port`,
      );
    }
    ic.get<TaskManager>(runtimePluginType, runtimePluginId).useNamedRuntimes(namedRuntimes(config));
    const containers = ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId);
    if (containers.list(CRI_NAMESPACE).length > 0) {
      // As containerd: pods and containers are recovered before the CRI serves, so the kubelet's first
      // calls after a restart see them.
      const started = await startCri(ic, config);
      running.set(started.service, Promise.resolve(started));
      return started.service;
    }
    let loading: Promise<StartedCri> | undefined;
    const service: GrpcService = {
      register() {},
      deferred: {
        prefixes: CRI_PATH_PREFIXES,
        load: () => {
          loading ??= startCri(ic, config).catch((err) => {
            ic.failed(err as Error);
            throw err;
          });
          running.set(service, loading);
          return loading.then((s) => s.service);
        },
      },
    };
    return service;
  },
  async close(service) {
    const started = await running.get(service)?.catch(() => undefined);
    await started?.close();
  },
};

/** The configured runtimes, for containers that name one outside the CRI (`ctr run --runtime NAME`). */
function namedRuntimes(config: CriConfig): Map<string, NamedRuntime> {
  return new Map(
    Object.entries(config.runtimes).map((
      [name, r],
    ) => [name, { runtimeType: r.runtimeType, options: runtimeOptions(r) }]),
  );
}

/** What each plugin instance started (or is starting), to stop at close. */
const running = new WeakMap<GrpcService, Promise<StartedCri>>();

async function startCri(ic: InitContext, config: CriConfig): Promise<StartedCri> {
  const { startCri } = await import("./cri.ts");
  return await startCri(ic, config);
}
