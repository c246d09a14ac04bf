import { EventBus } from "../core/events/mod.ts";
import type { PayloadDecoder } from "../base/event_types.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import type { EarlyPlugins } from "./builtin.ts";
import {
  criPluginId,
  gcPluginType,
  grpcPluginType,
  runtimePluginId,
  runtimePluginType,
  transferPluginType,
} from "../plugins/ids.ts";
import type { TaskManager } from "../core/runtime/mod.ts";
import type { GcScheduler } from "../core/gc/mod.ts";
import type { TransferDeps } from "../plugins/transfer.ts";
import {
  type DeferredService,
  type GrpcService,
  type PluginRecord,
  PluginRegistry,
} from "../plugins/registry.ts";
import { type DaemonConfig, pluginConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { ApiServer, callLogger, type CallRecord, type DeferredRoutes } from "./server.ts";
import type { TtrpcEventsServer } from "./ttrpc_events.ts";
import { versionServicePlugin } from "../services/version.ts";
import { healthServicePlugin } from "../services/health.ts";
import { introspectionServicePlugin } from "../services/introspection.ts";
import { Metrics } from "./metrics.ts";
import { version } from "../version.ts";
import { IdleCollector } from "../base/idle_gc.ts";
import { releaseStartupPages } from "../base/startup_pages.ts";
import { failedPrecondition } from "../base/errors.ts";
import { claimSocketPath } from "./socket.ts";

/** A running daemon: metadata, plugins and the API server, stopped in reverse order. */
export class Daemon {
  readonly #config: DaemonConfig;
  readonly #log: Logger;
  readonly #db: MetadataDB;
  readonly #registry: PluginRegistry;
  readonly #server: ApiServer;
  /** Listens once the API does, before the plugins start (shims they reattach publish events there). */
  #ttrpc: TtrpcEventsServer | undefined;
  readonly #metrics: Metrics;
  #stopMetrics?: () => Promise<void>;
  /** Made once the API serves: its timer is the process's first (see InitContext.onServing). */
  #gc: IdleCollector | undefined;
  /** Ids of the gRPC services initialised before the others, whose routes the server has from the start. */
  readonly #early: ReadonlySet<string>;
  readonly bus: EventBus;

  private constructor(
    config: DaemonConfig,
    log: Logger,
    db: MetadataDB,
    registry: PluginRegistry,
    bus: EventBus,
    early: readonly PluginRecord[],
  ) {
    this.#config = config;
    this.#log = log;
    this.#db = db;
    this.#registry = registry;
    this.bus = bus;
    this.#metrics = new Metrics({ grpcHistogram: config.metricsGrpcHistogram });
    this.#early = new Set(early.flatMap((r) => r.type === grpcPluginType && r.status === "ok" ? [r.id] : []));
    // Made before the other plugins start: it serves what the early ones register, and holds the rest.
    this.#server = new ApiServer({
      address: config.grpcAddress,
      log,
      uid: config.grpcUid,
      gid: config.grpcGid,
      onCall: callReporter([
        ...(config.metricsAddress ? [this.#metrics.record] : []),
        ...(log.enabled("debug") ? [callLogger(log)] : []),
      ]),
      onStart: config.metricsAddress ? this.#metrics.started : undefined,
      routes: (router) => {
        for (const r of early) {
          if (this.#early.has(r.id)) (r.instance as GrpcService).register(router);
        }
      },
      held: true,
    });
  }

  /** The plugins are up: every service's routes join the early ones, and calls that waited are served. */
  #open(): void {
    const all = [...this.#registry.getAll<GrpcService>(grpcPluginType)];
    const services = all.filter(([id]) => !this.#early.has(id)).map(([, svc]) => svc);
    this.#server.open(
      (router) => {
        for (const [id, svc] of all) {
          if (this.#early.has(id)) svc.registerLater?.(router);
          else svc.register(router);
        }
      },
      services.flatMap((svc) => svc.deferred ? [deferredRoutes(svc.deferred)] : []),
    );
  }

  #attachMetrics(): void {
    const registry = this.#registry;
    this.#metrics.registerMethods(this.#server.methods);
    this.#metrics.attach({
      db: this.#db,
      tasks: registry.getAll<TaskManager>(runtimePluginType).get(runtimePluginId),
      gc: registry.getAll<GcScheduler>(gcPluginType).get("scheduler"),
      pulls: registry.getAll<TransferDeps>(transferPluginType).get("local")?.pullStats,
      cri: registry.getAll<GrpcService>(grpcPluginType).has(criPluginId),
    });
  }

  /**
   * Starts the daemon. The API socket listens once the database is open and the plugins that need
   * nothing (Version, Health, Introspection's Server) are up: their calls are answered while the other
   * plugins' code loads and they start, and a call to any other service waits until they have (then
   * `plugins ls` lists every plugin as it ended up).
   * `beforeServe` runs just before the API socket listens (the debug endpoint binds there); what it
   * returns is undone if the start fails after it. A start that fails after the socket listened closes
   * it again; calls still waiting are answered UNAVAILABLE.
   */
  static async start(
    config: DaemonConfig,
    log: Logger,
    options: { beforeServe?: (daemon: Daemon) => Promise<(() => unknown) | void> } = {},
  ): Promise<Daemon> {
    const started = performance.now();
    log.info("starting berth", { version, root: config.root, state: config.state });
    const ttrpcAddress = `${config.grpcAddress}.ttrpc`;
    // Before anything else: a second daemon on a live daemon's address, or an address that cannot be,
    // must fail without opening the database, starting plugins or taking a live daemon's sockets.
    await claimSocketPath(config.grpcAddress);
    await claimSocketPath(ttrpcAddress);
    await makeFolder("root", config.root);
    await makeFolder("state", config.state);
    const db = new MetadataDB(`${config.root}/meta.db`);
    // Events from shims are decoded by schemas loaded with the other plugins' code, after the API listens.
    let decode: PayloadDecoder = () => undefined;
    const bus = new EventBus({ decode: (event) => decode(event) });
    const registry = new PluginRegistry();
    const early: EarlyPlugins = {
      version: versionServicePlugin,
      health: healthServicePlugin,
      introspection: introspectionServicePlugin(registry),
    };
    for (const def of Object.values(early)) registry.register(def);
    // Whatever was opened, closed again in reverse when the start fails: no socket is left behind.
    const undo: (() => unknown)[] = [() => db.close()];
    try {
      const initOptions = {
        root: config.root,
        state: config.state,
        address: config.grpcAddress,
        db,
        events: bus,
        log,
        pluginConfig: (type: string, id: string) => pluginConfig(config, type, id),
        streamProcessors: config.streamProcessors,
        disabled: config.disabledPlugins,
        required: config.requiredPlugins,
      };
      const daemon = new Daemon(config, log, db, registry, bus, await registry.initEarly(initOptions));
      undo.push(() => registry.close(log));
      const undoBefore = await options.beforeServe?.(daemon);
      if (undoBefore) undo.push(undoBefore);
      undo.push(() => daemon.#server.close());
      await daemon.#server.listen();
      log.info("serving", { address: config.grpcAddress });
      // Most of the daemon's code loads here, behind the listening socket.
      const [{ registerBuiltins }, { registerProxyPlugins }, { TtrpcEventsServer }, events] = await Promise
        .all([
          import("./builtin.ts"),
          import("./proxy_plugins.ts"),
          import("./ttrpc_events.ts"),
          import("../base/event_types.ts"),
        ]);
      decode = events.schemaDecoder(events.eventSchemas());
      registerBuiltins(registry, bus, early);
      await registerProxyPlugins(registry, config.proxyPlugins);
      for (const w of registry.unusedConfig(config.plugins, { disabled: config.disabledPlugins })) {
        log.warn(w.msg, { ...w.fields, ...(config.path ? { config: config.path } : {}) });
      }
      // Before the plugins: shims reattached at start-up publish their events here.
      const ttrpc = daemon.#ttrpc = await TtrpcEventsServer.listen(ttrpcAddress, {
        bus,
        log,
        uid: config.grpcUid,
        gid: config.grpcGid,
      });
      undo.push(() => ttrpc.close());
      // Calls to the early services that arrive meanwhile are answered between two plugins' starts.
      await registry.init({ ...initOptions, pause: () => daemon.#server.unaryDone() });
      daemon.#open();
      if (config.metricsAddress) {
        daemon.#attachMetrics();
        const stop = daemon.#metrics.serve(config.metricsAddress, log);
        daemon.#stopMetrics = stop;
        undo.push(stop);
      }
      log.info("berth successfully booted", { ms: Math.round(performance.now() - started) });
      daemon.#gc = new IdleCollector({ afterEach: (n) => daemon.#releaseStartupPages(n) });
      registry.serving();
      // The services whose code loads on first need load now, while the API is quiet (ApiServer.warm).
      void daemon.#server.warm().then(() => {
        if (config.metricsAddress) daemon.#metrics.registerMethods(daemon.#server.methods);
      });
      return daemon;
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch (cleanup) {
          log.warn("cannot undo a step of the failed start", { error: (cleanup as Error).message });
        }
      }
      throw err;
    }
  }

  /**
   * Each time the daemon has gone quiet (after start-up, after a burst of calls): the executable's pages
   * go back to the kernel, and what idling needs comes back on its own.
   */
  #releaseStartupPages(collections: number): void {
    const bytes = releaseStartupPages();
    if (collections === 1) {
      this.#log.debug("start-up pages released", { mib: +(bytes / (1 << 20)).toFixed(1) });
    }
  }

  get registry(): PluginRegistry {
    return this.#registry;
  }

  /** The API's open connections and calls in flight, for the debug endpoint. */
  apiActivity(): ReturnType<ApiServer["activity"]> {
    return this.#server.activity();
  }

  async stop(): Promise<void> {
    this.#log.info("stopping berth");
    this.#gc?.stop();
    await this.#server.close();
    await this.#stopMetrics?.();
    await this.#registry.close(this.#log);
    await this.#ttrpc?.close();
    this.#db.close();
    this.#log.info("berth stopped", { address: this.#config.grpcAddress });
  }
}

/** A service loaded on its first call, as the API server takes it. */
function deferredRoutes(service: DeferredService): DeferredRoutes {
  return {
    prefixes: service.prefixes,
    warm: service.warm,
    load: async () => {
      const loaded = await service.load();
      return (router) => loaded.register(router);
    },
  };
}

/** One hook for the API server from any number of call observers; none means no hook (no timing cost). */
function callReporter(observers: ((call: CallRecord) => void)[]): ((call: CallRecord) => void) | undefined {
  if (observers.length === 0) return undefined;
  if (observers.length === 1) return observers[0];
  return (call) => {
    for (const o of observers) o(call);
  };
}

async function makeFolder(what: string, path: string): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive: true, mode: 0o711 });
  } catch (err) {
    throw failedPrecondition(`Cannot create the ${what} folder ${path}: ${(err as Error).message}`);
  }
}
