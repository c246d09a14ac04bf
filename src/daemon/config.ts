import { parse, TomlError } from "smol-toml";
import { invalidArgument } from "../base/errors.ts";
import { type ConfigWarning, tomlKey } from "../plugins/registry.ts";

export type { ConfigWarning };
import type { LogFormat, LogLevel } from "./log.ts";
import { parseLogFormat, parseLogLevel } from "./log.ts";
import { isEncryptedLayerType } from "../oci/imgcrypt/spec.ts";
import type { StreamProcessor } from "../core/transfer/mod.ts";

/**
 * The daemon's configuration. Berth reads containerd's `config.toml` (version 2 and 3) so an existing
 * file keeps working; what Berth does not implement is reported, never fatal, never silently ignored.
 */
export interface DaemonConfig {
  version: number;
  root: string;
  state: string;
  grpcAddress: string;
  /** Numeric uid/gid that own the socket (containerd's [grpc] uid/gid). */
  grpcUid: number;
  grpcGid: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  metricsAddress: string;
  /** containerd's `[debug] address`: a unix socket serving /debug/vars, /debug/calls and /debug/heap. */
  debugAddress: string;
  /** containerd's `[metrics] grpc_histogram`: also time every call into grpc_server_handling_seconds. */
  metricsGrpcHistogram: boolean;
  disabledPlugins: string[];
  requiredPlugins: string[];
  /** `[plugins."<type>.<id>"]` tables, keyed by `<type>.<id>`. */
  plugins: Record<string, Record<string, unknown>>;
  /**
   * `[stream_processors."<id>"]` entries for encrypted layers (imgcrypt's ctd-decoder): Berth decrypts
   * those media types in-process and takes the decoder's `--decryption-keys-path` from `args`. Other
   * stream processors are not run, and are reported.
   */
  streamProcessors: Record<string, StreamProcessor>;
  /**
   * `[proxy_plugins.NAME]` entries: snapshotters (`type = "snapshot"`) and content stores
   * (`type = "content"`) served by another process, loaded as `io.containerd.snapshotter.v1.NAME` and
   * `io.containerd.content.v1.NAME`. Other types are reported.
   */
  proxyPlugins: Record<string, ProxyPluginConfig>;
  /** Where the configuration came from, or undefined when none was read. */
  path?: string;
}

export interface ProxyPluginConfig {
  readonly type: "snapshot" | "content";
  /** The proxy's unix socket. */
  readonly address: string;
  /** containerd's `platform` of the proxy ("" when not given): Berth does not filter by it. */
  readonly platform: string;
}

export const defaultConfig: Readonly<DaemonConfig> = Object.freeze({
  version: 2,
  root: "/var/lib/berth",
  state: "/run/berth",
  grpcAddress: "/run/berth/berth.sock",
  grpcUid: 0,
  grpcGid: 0,
  logLevel: "info",
  logFormat: "text",
  metricsAddress: "",
  debugAddress: "",
  metricsGrpcHistogram: false,
  disabledPlugins: [],
  requiredPlugins: [],
  plugins: {},
  streamProcessors: {},
  proxyPlugins: {},
});

export interface LoadResult {
  config: DaemonConfig;
  /** Keys and sections of the file that Berth does not act on, each naming what it is about. */
  warnings: ConfigWarning[];
}

/**
 * Reads `path`. A missing file is not an error when `optional` (the default path may be absent);
 * a malformed one is, naming the file and line.
 */
export async function loadConfig(path: string, options: { optional?: boolean } = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && options.optional) {
      return {
        config: { ...defaultConfig, plugins: {}, streamProcessors: {}, proxyPlugins: {} },
        warnings: [],
      };
    }
    throw invalidArgument(`Cannot read config ${path}: ${(err as Error).message}`);
  }
  const result = parseConfig(text, path);
  result.config.path = path;
  return result;
}

export function parseConfig(text: string, path = "config.toml"): LoadResult {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split("\n")[0];
      throw invalidArgument(`Malformed config ${path} at line ${err.line}, column ${err.column}: ${first}`);
    }
    throw err;
  }
  const config: DaemonConfig = {
    ...defaultConfig,
    disabledPlugins: [],
    requiredPlugins: [],
    plugins: {},
    streamProcessors: {},
    proxyPlugins: {},
  };
  // Every key is read through `top`; whatever it never read is reported as not implemented.
  const top = new Section(doc, "", path);
  config.version = top.num("version") ?? 1;
  if (config.version > 3) throw invalidArgument(`Unsupported config version ${config.version} in ${path}`);
  config.root = top.str("root") ?? config.root;
  config.state = top.str("state") ?? config.state;
  const grpc = top.section("grpc");
  config.grpcAddress = grpc.str("address") ?? config.grpcAddress;
  config.grpcUid = grpc.num("uid") ?? 0;
  config.grpcGid = grpc.num("gid") ?? 0;
  const debug = top.section("debug");
  const level = debug.str("level");
  if (level) config.logLevel = wrap(path, () => parseLogLevel(level));
  const format = debug.str("format");
  if (format) config.logFormat = wrap(path, () => parseLogFormat(format));
  config.debugAddress = debug.str("address") ?? "";
  const metrics = top.section("metrics");
  config.metricsAddress = metrics.str("address") ?? "";
  config.metricsGrpcHistogram = metrics.bool("grpc_histogram") ?? false;
  config.disabledPlugins = top.strList("disabled_plugins");
  config.requiredPlugins = top.strList("required_plugins");
  config.streamProcessors = decoderProcessors(top);
  config.proxyPlugins = proxyPlugins(top, path);
  const kept = keepContentPlugin(config, path);

  // The plugins' tables are checked against what each plugin declares (PluginRegistry.unusedConfig).
  const plugins = top.take("plugins") ?? {};
  if (!isTable(plugins)) throw invalidArgument(`Malformed config ${path}: [plugins] must be a table`);
  for (const [id, table] of Object.entries(plugins)) {
    if (!isTable(table)) throw invalidArgument(`Malformed config ${path}: [plugins."${id}"] must be a table`);
    // Version 1 files name plugins by bare id ("cri"); later versions by "<type>.<id>".
    config.plugins[id] = table;
  }
  return { config, warnings: [...top.unused(), ...kept] };
}

/** The local content plugin, which also holds the metadata of a content proxy's blobs. */
const CONTENT_PLUGIN = "io.containerd.content.v1.content";

/**
 * containerd 1.6 hands its metadata plugin whichever content plugin its map yields first, so a config
 * with a content proxy disables `io.containerd.content.v1.content` to make the proxy the one used.
 * Berth picks the proxy without that, and its content plugin is also the metadata layer every content
 * user goes through: such an entry is dropped, and said so.
 */
function keepContentPlugin(config: DaemonConfig, path: string): ConfigWarning[] {
  if (!Object.values(config.proxyPlugins).some((p) => p.type === "content")) return [];
  const disabled: string[] = config.disabledPlugins.filter((id) => id === CONTENT_PLUGIN || id === "content");
  if (disabled.length === 0) return [];
  config.disabledPlugins = config.disabledPlugins.filter((id) => !disabled.includes(id));
  return disabled.map((plugin) => ({
    msg:
      "disabled_plugins entry ignored: Berth's content plugin keeps the namespaces and labels of the content proxy's blobs",
    fields: { plugin, config: path },
  }));
}

/** The `[stream_processors]` entries that accept encrypted layers; the others stay unread (reported). */
function decoderProcessors(top: Section): Record<string, StreamProcessor> {
  const raw = top.peek("stream_processors");
  if (!isTable(raw)) return {};
  const out: Record<string, StreamProcessor> = {};
  const table = top.section("stream_processors");
  for (const [id, entry] of Object.entries(raw)) {
    if (!isTable(entry) || !Array.isArray(entry.accepts) || !entry.accepts.some(isEncryptedLayerType)) {
      continue;
    }
    const s = table.section(id);
    out[id] = {
      accepts: s.strList("accepts"),
      returns: s.str("returns") ?? "",
      path: s.str("path") ?? "",
      args: s.strList("args"),
    };
    // The decoder's environment has no meaning when Berth decrypts in-process.
    s.strList("env");
  }
  return out;
}

/**
 * The `[proxy_plugins]` entries of type "snapshot" and "content"; the others stay unread (reported).
 * At most one content proxy: it becomes the content store's backend, where containerd 1.6 would pick
 * one of several at random.
 */
function proxyPlugins(top: Section, path: string): Record<string, ProxyPluginConfig> {
  const raw = top.peek("proxy_plugins");
  if (!isTable(raw)) return {};
  const out: Record<string, ProxyPluginConfig> = {};
  const table = top.section("proxy_plugins");
  for (const [name, entry] of Object.entries(raw)) {
    if (!isTable(entry) || (entry.type !== "snapshot" && entry.type !== "content")) continue;
    const s = table.section(name);
    const type = s.str("type") as ProxyPluginConfig["type"];
    const address = s.str("address") ?? "";
    if (address === "") {
      throw invalidArgument(`Malformed config ${path}: [proxy_plugins.${name}] needs an address`);
    }
    out[name] = { type, address, platform: s.str("platform") ?? "" };
  }
  const content = Object.keys(out).filter((name) => out[name]!.type === "content");
  if (content.length > 1) {
    throw invalidArgument(
      `Invalid config ${path}: ${content.length} content proxy plugins are configured ` +
        `(${content.map((n) => `"${n}"`).join(", ")}): Berth keeps its content in one store, configure one`,
    );
  }
  return out;
}

/** The `[plugins."<type>.<id>"]` table for a plugin, also found under the bare id (version 1 files). */
export function pluginConfig(config: DaemonConfig, type: string, id: string): Record<string, unknown> {
  return config.plugins[`${type}.${id}`] ?? config.plugins[id] ?? {};
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * A TOML table read through accessors that remember what was read, so that everything else in the
 * file can be reported: the daemon's keys are whatever parseConfig reads, not a list kept beside it.
 */
class Section {
  readonly #table: Record<string, unknown>;
  /** Dotted TOML path of this table, "" for the top. */
  readonly #name: string;
  readonly #file: string;
  readonly #read = new Set<string>();
  readonly #children = new Map<string, Section>();

  constructor(table: Record<string, unknown>, name: string, file: string) {
    this.#table = table;
    this.#name = name;
    this.#file = file;
  }

  str(key: string): string | undefined {
    return str(this.take(key), this.#key(key), this.#file);
  }

  num(key: string): number | undefined {
    return num(this.take(key), this.#key(key), this.#file);
  }

  bool(key: string): boolean | undefined {
    const v = this.take(key);
    if (v === undefined || typeof v === "boolean") return v;
    throw invalidArgument(`Malformed config ${this.#file}: "${this.#key(key)}" must be true or false`);
  }

  strList(key: string): string[] {
    return strList(this.take(key), this.#key(key), this.#file);
  }

  /** The raw value of `key`, which does not count as read. */
  peek(key: string): unknown {
    return this.#table[key];
  }

  /** The raw value of `key`, which counts as read (its checks are the caller's). */
  take(key: string): unknown {
    this.#read.add(key);
    return this.#table[key];
  }

  /** A sub-table; an absent one reads as empty. */
  section(key: string): Section {
    let child = this.#children.get(key);
    if (child) return child;
    const v = this.#table[key] ?? {};
    if (!isTable(v)) {
      throw invalidArgument(`Malformed config ${this.#file}: [${this.#key(key)}] must be a table`);
    }
    child = new Section(v, this.#key(key), this.#file);
    this.#children.set(key, child);
    this.#read.add(key);
    return child;
  }

  /** Keys never read, and whole sections never entered, as warnings. */
  unused(): ConfigWarning[] {
    const out: ConfigWarning[] = [];
    for (const [key, value] of Object.entries(this.#table)) {
      const child = this.#children.get(key);
      if (child) out.push(...child.unused());
      else if (this.#read.has(key)) continue;
      else if (isTable(value)) {
        out.push({
          msg: "config section is not implemented by Berth: ignored",
          fields: {
            section: this.#key(key),
            keys: Object.keys(value).map(tomlKey).join(", "),
            config: this.#file,
          },
        });
      } else {
        out.push({
          msg: "config key is not implemented by Berth: ignored",
          fields: { key: this.#key(key), config: this.#file },
        });
      }
    }
    return out;
  }

  #key(key: string): string {
    return this.#name === "" ? tomlKey(key) : `${this.#name}.${tomlKey(key)}`;
  }
}

function str(v: unknown, key: string, path: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalidArgument(`Malformed config ${path}: "${key}" must be a string`);
  return v;
}

function num(v: unknown, key: string, path: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" && typeof v !== "bigint") {
    throw invalidArgument(`Malformed config ${path}: "${key}" must be a number`);
  }
  return Number(v);
}

function strList(v: unknown, key: string, path: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw invalidArgument(`Malformed config ${path}: "${key}" must be a list of strings`);
  }
  return v as string[];
}

function wrap<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw invalidArgument(`Malformed config ${path}: ${(err as Error).message}`);
  }
}
