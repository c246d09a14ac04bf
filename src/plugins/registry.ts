import type { ConnectRouter } from "@connectrpc/connect";
import { failedPrecondition, notFound } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import type { MetadataDB } from "../core/metadata/db.ts";
import type { Logger } from "../base/log.ts";
import type { StreamProcessor } from "../core/transfer/mod.ts";

/**
 * Plugins as containerd has them: each part registers a type and an id, names the types it needs,
 * and is initialised after them with its own root and state folders. A plugin that cannot work on
 * this host throws SkipPlugin, which is reported but is not a failure.
 */
export interface InitContext {
  /**
   * `<root>/<type>.<id>`, created when first read: as containerd, a plugin that keeps nothing on disk
   * gets no folder (and a start makes ~10 folders, not ~56).
   */
  readonly root: string;
  /** `<state>/<type>.<id>`, created when first read. */
  readonly state: string;
  /** The daemon's top-level root and state folders. */
  readonly daemonRoot: string;
  readonly daemonState: string;
  /** The daemon's gRPC address, for parts that hand it on (the shim manager). */
  readonly address: string;
  /**
   * The `[plugins."<type>.<id>"]` table, `{}` when absent, holding only the keys the plugin declares
   * in `configKeys`: reading any other key throws.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** The daemon's `[stream_processors]` for encrypted layers (read by the transfer plugin). */
  readonly streamProcessors: Readonly<Record<string, StreamProcessor>>;
  readonly db: MetadataDB;
  readonly events: EventPublisher;
  readonly log: Logger;
  /** Values shown by introspection (`ctr plugins ls -d`), e.g. a snapshotter's root. */
  readonly exports: Record<string, string>;
  /** The instance of an initialised plugin of `type` (and `id`, when several exist). */
  get<T>(type: string, id?: string): T;
  /** Every initialised plugin of `type`, by id. */
  getAll<T>(type: string): Map<string, T>;
  /**
   * The instance when that plugin is loaded, else undefined: for dependencies a plugin can do without
   * (leases, the GC scheduler), which a config may disable. List them in `requires` too, for the order.
   */
  getOptional<T>(type: string, id?: string): T | undefined;
  /**
   * Marks the plugin failed after its init returned: for the part of its work it finishes later (a
   * service loaded on its first call). It is listed with this error from then on.
   */
  failed(err: Error): void;
  /**
   * Runs `fn` once the daemon's API serves (at once if it already does): for timers and background work
   * that no call needs before then. The first timer of a process loads Deno's Node timers (~5 ms); made
   * after the socket listens, that overlaps with the first client's own start instead of delaying it.
   */
  onServing(fn: () => void): void;
}

export interface PluginDef<T = unknown> {
  readonly type: string;
  readonly id: string;
  readonly requires?: readonly string[];
  /**
   * Needs no other plugin and starts at once (Version, Health, Introspection): initialised by initEarly(), before the
   * daemon listens, so that its calls are answered while the other plugins start. Only for plugins
   * without `requires`.
   */
  readonly early?: boolean;
  /**
   * The keys of its `[plugins."<type>.<id>"]` table the plugin reads. Any other key found there is
   * reported at start-up as not implemented, and reading an undeclared key throws, so the list cannot
   * fall behind the code.
   */
  readonly configKeys?: readonly string[];
  init(ic: InitContext): T | Promise<T>;
  close?(instance: T): void | Promise<void>;
}

/** A gRPC service is a plugin of type `io.containerd.grpc.v1` whose instance registers its routes. */
export interface GrpcService {
  register(router: ConnectRouter): void;
  /**
   * Of an `early` service: routes that need every plugin started (Introspection's plugin list), which
   * the daemon registers once they have; calls to them wait until then. Other services register all
   * their routes in register().
   */
  registerLater?(router: ConnectRouter): void;
  /** Routes whose code loads on their first call instead of at start-up. */
  readonly deferred?: DeferredService;
}

/**
 * A service loaded when it is first called: calls to a path under one of `prefixes` wait for `load`
 * (run once), then the service it returns registers its routes and serves them.
 */
export interface DeferredService {
  /** Request path prefixes, e.g. `/runtime.v1.`. */
  readonly prefixes: readonly string[];
  load(): Promise<GrpcService>;
  /** Load it once the daemon serves, before any call asks (ApiServer.warm): cheap, and soon needed. */
  readonly warm?: boolean;
}

export class SkipPlugin extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SkipPlugin";
  }
}

export type PluginStatus = "ok" | "skip" | "error";

export interface PluginRecord {
  readonly type: string;
  readonly id: string;
  readonly requires: readonly string[];
  status: PluginStatus;
  error?: string;
  exports: Record<string, string>;
  instance?: unknown;
}

export interface InitOptions {
  root: string;
  state: string;
  address: string;
  db: MetadataDB;
  events: EventPublisher;
  log: Logger;
  /** `[plugins.…]` tables by `<type>.<id>` (or the bare id). */
  pluginConfig: (type: string, id: string) => Record<string, unknown>;
  /** `[stream_processors]` entries for encrypted layers; none by default. */
  streamProcessors?: Readonly<Record<string, StreamProcessor>>;
  disabled?: readonly string[];
  required?: readonly string[];
  /** Awaited before each plugin's init: the daemon lets calls it already serves finish first. */
  pause?: () => Promise<void>;
}

export class PluginRegistry {
  readonly #defs: PluginDef[] = [];
  readonly #records: PluginRecord[] = [];
  /** Plugins initialised by initEarly(), listed by init() in their place. */
  readonly #early = new Map<PluginDef, PluginRecord>();
  /** What plugins asked to run once the API serves; undefined once it does. */
  #whenServing: { fn: () => void; log: Logger }[] | undefined = [];

  /**
   * Adds a plugin at the end of the start order. The same definition registered again moves to the end
   * (a plugin registered early to start early keeps its place in the full list); another one with the
   * same type and id is an error.
   */
  register(def: PluginDef<unknown>): this {
    const at = this.#defs.findIndex((d) => d.type === def.type && d.id === def.id);
    if (at >= 0 && this.#defs[at] !== def) {
      throw new Error(`Plugin ${def.type}.${def.id} is registered twice`);
    }
    if (at >= 0) this.#defs.splice(at, 1);
    this.#defs.push(def);
    return this;
  }

  /**
   * Initialises the enabled plugins marked `early`, ahead of init(), and returns their records: what
   * they serve can be served before the others start. init() then lists them in their place.
   */
  async initEarly(options: InitOptions): Promise<readonly PluginRecord[]> {
    const out: PluginRecord[] = [];
    for (const def of this.#defs) {
      if (!def.early || (def.requires ?? []).length > 0 || this.#early.has(def)) continue;
      const record = await this.#initOne(def, options);
      this.#early.set(def, record);
      out.push(record);
    }
    return out;
  }

  /** Initialises every enabled plugin in dependency order; fails only when a required one is not ok. */
  async init(options: InitOptions): Promise<void> {
    for (const def of ordered(this.#defs)) {
      const early = this.#early.get(def);
      if (!early) await options.pause?.();
      this.#records.push(early ?? await this.#initOne(def, options));
    }
    for (const uri of options.required ?? []) {
      const rec = this.#records.find((r) => `${r.type}.${r.id}` === uri);
      if (!rec || rec.status !== "ok") {
        throw failedPrecondition(
          `Required plugin ${uri} is not loaded: ${rec ? rec.error ?? rec.status : "no such plugin"}`,
        );
      }
    }
  }

  /** One plugin's init, its outcome recorded (a failure or skip is reported, not thrown). */
  async #initOne(def: PluginDef, options: InitOptions): Promise<PluginRecord> {
    const disabled = new Set(options.disabled ?? []);
    const uri = `${def.type}.${def.id}`;
    const record: PluginRecord = {
      type: def.type,
      id: def.id,
      requires: def.requires ?? [],
      status: "skip",
      exports: {},
    };
    if (disabled.has(uri) || disabled.has(def.id)) {
      record.error = "disabled in config";
      return record;
    }
    const root = folder(`${options.root}/${uri}`);
    const state = folder(`${options.state}/${uri}`);
    const log = options.log.with({ id: def.id, type: def.type });
    const ic: InitContext = {
      get root() {
        return root();
      },
      get state() {
        return state();
      },
      daemonRoot: options.root,
      daemonState: options.state,
      address: options.address,
      config: declaredConfig(uri, options.pluginConfig(def.type, def.id), def.configKeys ?? []),
      streamProcessors: options.streamProcessors ?? {},
      db: options.db,
      events: options.events,
      log,
      exports: record.exports,
      get: <T>(type: string, id?: string) => this.get<T>(type, id),
      getAll: <T>(type: string) => this.getAll<T>(type),
      getOptional: <T>(type: string, id?: string) => this.#find(type, id)?.instance as T | undefined,
      failed: (err) => {
        record.status = "error";
        record.error = err.message;
        log.warn("failed to load plugin", { error: err.message });
      },
      onServing: (fn) => {
        if (this.#whenServing) this.#whenServing.push({ fn, log });
        else runLogged(fn, log);
      },
    };
    log.debug("loading plugin");
    try {
      record.instance = await def.init(ic);
      record.status = "ok";
    } catch (err) {
      if (err instanceof SkipPlugin) {
        record.status = "skip";
        record.error = err.message;
        log.info("skip loading plugin", { error: err.message });
      } else {
        record.status = "error";
        record.error = (err as Error).message;
        log.warn("failed to load plugin", { error: (err as Error).message });
      }
    }
    return record;
  }

  /**
   * What in the configuration no plugin reads: `[plugins]` sections of plugins Berth does not have,
   * keys a plugin does not declare, and disabled_plugins entries that name no plugin. Sections are
   * found by `<type>.<id>` or, as version 1 files name them, by the bare id.
   */
  unusedConfig(
    plugins: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
    options: { disabled?: readonly string[] } = {},
  ): ConfigWarning[] {
    const out: ConfigWarning[] = [];
    for (const [name, table] of Object.entries(plugins)) {
      const defs = this.#defs.filter((d) => `${d.type}.${d.id}` === name || d.id === name);
      const section = `plugins.${tomlKey(name)}`;
      if (defs.length === 0) {
        out.push({ msg: "config section is for a plugin Berth does not have: ignored", fields: { section } });
        continue;
      }
      const read = new Set(defs.flatMap((d) => d.configKeys ?? []));
      for (const key of Object.keys(table)) {
        if (!read.has(key)) {
          out.push({
            msg: "config key is not implemented by Berth: ignored",
            fields: { key: `${section}.${tomlKey(key)}` },
          });
        }
      }
    }
    for (const name of options.disabled ?? []) {
      if (!this.#defs.some((d) => `${d.type}.${d.id}` === name || d.id === name)) {
        out.push({ msg: "disabled_plugins names a plugin Berth does not have", fields: { plugin: name } });
      }
    }
    return out;
  }

  #find(type: string, id?: string): PluginRecord | undefined {
    return this.#records.find((r) =>
      r.type === type && (id === undefined || r.id === id) && r.status === "ok"
    );
  }

  get<T>(type: string, id?: string): T {
    const rec = this.#find(type, id);
    if (!rec) {
      throw notFound(`Plugin ${id === undefined ? type : `${type}.${id}`} is not loaded`);
    }
    return rec.instance as T;
  }

  getAll<T>(type: string): Map<string, T> {
    const out = new Map<string, T>();
    for (const r of this.#records) {
      if (r.type === type && r.status === "ok") out.set(r.id, r.instance as T);
    }
    return out;
  }

  get records(): readonly PluginRecord[] {
    return this.#records;
  }

  /** The daemon's API serves now: runs what plugins deferred until then, in their order. */
  serving(): void {
    const deferred = this.#whenServing ?? [];
    this.#whenServing = undefined;
    for (const { fn, log } of deferred) runLogged(fn, log);
  }

  /** Closes initialised plugins in reverse order; errors are logged, not thrown. */
  async close(log: Logger): Promise<void> {
    for (const rec of [...this.#records].reverse()) {
      const def = this.#defs.find((d) => d.type === rec.type && d.id === rec.id);
      if (rec.status !== "ok" || !def?.close) continue;
      try {
        await def.close(rec.instance);
      } catch (err) {
        log.warn("failed to close plugin", { id: rec.id, type: rec.type, error: (err as Error).message });
      }
    }
  }
}

function runLogged(fn: () => void, log: Logger): void {
  try {
    fn();
  } catch (err) {
    log.error("plugin work after the start failed", { error: (err as Error).message });
  }
}

/** Something in the configuration that Berth does not act on, as a structured log line. */
export interface ConfigWarning {
  readonly msg: string;
  /** Names the section (`section`), key (`key`) or plugin (`plugin`) concerned. */
  readonly fields: Readonly<Record<string, string>>;
}

/** A TOML key as written in a file: bare when it can be, else quoted. */
export function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** The plugin's config table cut to its declared keys; reading another key is a bug in the plugin. */
function declaredConfig(
  uri: string,
  table: Readonly<Record<string, unknown>>,
  keys: readonly string[],
): Readonly<Record<string, unknown>> {
  const declared = new Set(keys);
  const picked = Object.fromEntries(Object.entries(table).filter(([k]) => declared.has(k)));
  return new Proxy(picked, {
    get(target, key, receiver) {
      if (typeof key === "string" && !declared.has(key)) {
        throw new Error(`Plugin ${uri} reads config key "${key}" but does not declare it in configKeys`);
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

/** A folder's path, the folder made (0711, with its parents) the first time the path is asked for. */
function folder(path: string): () => string {
  let made = false;
  return () => {
    if (!made) {
      Deno.mkdirSync(path, { recursive: true, mode: 0o711 });
      made = true;
    }
    return path;
  };
}

/** Registration order, except that every plugin comes after the plugins of the types it requires. */
function ordered(defs: readonly PluginDef[]): PluginDef[] {
  const out: PluginDef[] = [];
  const state = new Map<PluginDef, "visiting" | "done">();
  const visit = (def: PluginDef, path: string[]) => {
    const s = state.get(def);
    if (s === "done") return;
    const uri = `${def.type}.${def.id}`;
    if (s === "visiting") throw new Error(`Plugin dependency cycle: ${[...path, uri].join(" -> ")}`);
    state.set(def, "visiting");
    for (const type of def.requires ?? []) {
      for (const dep of defs) {
        if (dep !== def && (type === "*" || dep.type === type)) {
          if (type === "*" && (dep.requires ?? []).includes("*")) continue;
          visit(dep, [...path, uri]);
        }
      }
    }
    state.set(def, "done");
    out.push(def);
  };
  for (const def of defs) visit(def, []);
  return out;
}
