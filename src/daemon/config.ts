import { parse, TomlError } from "smol-toml";
import { invalidArgument } from "../core/errdefs/mod.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import { parseLogFormat, parseLogLevel } from "./log.ts";

/**
 * The daemon's configuration. Berth reads containerd's `config.toml` (version 2 and 3) so an existing
 * file keeps working; keys we do not know yet are reported, never fatal.
 */
export interface DaemonConfig {
  version: number;
  root: string;
  state: string;
  grpcAddress: string;
  ttrpcAddress: string;
  /** Numeric uid/gid that own the socket (containerd's [grpc] uid/gid). */
  grpcUid: number;
  grpcGid: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  metricsAddress: string;
  disabledPlugins: string[];
  requiredPlugins: string[];
  /** `[plugins."<type>.<id>"]` tables, keyed by `<type>.<id>`. */
  plugins: Record<string, Record<string, unknown>>;
  /** Where the configuration came from, or undefined when none was read. */
  path?: string;
}

export const defaultConfig: Readonly<DaemonConfig> = Object.freeze({
  version: 2,
  root: "/var/lib/berth",
  state: "/run/berth",
  grpcAddress: "/run/berth/berth.sock",
  ttrpcAddress: "",
  grpcUid: 0,
  grpcGid: 0,
  logLevel: "info",
  logFormat: "text",
  metricsAddress: "",
  disabledPlugins: [],
  requiredPlugins: [],
  plugins: {},
});

const knownTop = new Set([
  "version",
  "root",
  "state",
  "temp",
  "plugin_dir",
  "disabled_plugins",
  "required_plugins",
  "oom_score",
  "imports",
  "grpc",
  "ttrpc",
  "debug",
  "metrics",
  "cgroup",
  "plugins",
  "timeouts",
  "stream_processors",
  "proxy_plugins",
]);
const knownSections: Record<string, Set<string>> = {
  grpc: new Set([
    "address",
    "tcp_address",
    "tcp_tls_ca",
    "tcp_tls_cert",
    "tcp_tls_key",
    "uid",
    "gid",
    "max_recv_message_size",
    "max_send_message_size",
  ]),
  ttrpc: new Set(["address", "uid", "gid"]),
  debug: new Set(["address", "uid", "gid", "level", "format"]),
  metrics: new Set(["address", "grpc_histogram"]),
};

export interface LoadResult {
  config: DaemonConfig;
  /** Human-readable warnings, e.g. unknown keys. */
  warnings: string[];
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
      return { config: { ...defaultConfig, plugins: {} }, warnings: [] };
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
  const warnings: string[] = [];
  const config: DaemonConfig = { ...defaultConfig, disabledPlugins: [], requiredPlugins: [], plugins: {} };

  for (const key of Object.keys(doc)) {
    if (!knownTop.has(key)) warnings.push(`Unknown key "${key}" in ${path}: ignored`);
  }
  for (const [section, keys] of Object.entries(knownSections)) {
    const table = doc[section];
    if (table === undefined) continue;
    if (!isTable(table)) throw invalidArgument(`Malformed config ${path}: [${section}] must be a table`);
    for (const key of Object.keys(table)) {
      if (!keys.has(key)) warnings.push(`Unknown key "${section}.${key}" in ${path}: ignored`);
    }
  }

  config.version = num(doc, "version", path) ?? 1;
  if (config.version > 3) throw invalidArgument(`Unsupported config version ${config.version} in ${path}`);
  config.root = str(doc, "root", path) ?? config.root;
  config.state = str(doc, "state", path) ?? config.state;
  const grpc = (doc.grpc ?? {}) as Record<string, unknown>;
  config.grpcAddress = str(grpc, "address", path) ?? config.grpcAddress;
  config.grpcUid = num(grpc, "uid", path) ?? 0;
  config.grpcGid = num(grpc, "gid", path) ?? 0;
  const ttrpc = (doc.ttrpc ?? {}) as Record<string, unknown>;
  config.ttrpcAddress = str(ttrpc, "address", path) ?? "";
  const debug = (doc.debug ?? {}) as Record<string, unknown>;
  const level = str(debug, "level", path);
  if (level) config.logLevel = wrap(path, () => parseLogLevel(level));
  const format = str(debug, "format", path);
  if (format) config.logFormat = wrap(path, () => parseLogFormat(format));
  const metrics = (doc.metrics ?? {}) as Record<string, unknown>;
  config.metricsAddress = str(metrics, "address", path) ?? "";
  config.disabledPlugins = strList(doc, "disabled_plugins", path);
  config.requiredPlugins = strList(doc, "required_plugins", path);

  const plugins = doc.plugins ?? {};
  if (!isTable(plugins)) throw invalidArgument(`Malformed config ${path}: [plugins] must be a table`);
  for (const [id, table] of Object.entries(plugins)) {
    if (!isTable(table)) throw invalidArgument(`Malformed config ${path}: [plugins."${id}"] must be a table`);
    // Version 1 files name plugins by bare id ("cri"); later versions by "<type>.<id>".
    config.plugins[id] = table;
  }
  return { config, warnings };
}

/** The `[plugins."<type>.<id>"]` table for a plugin, also found under the bare id (version 1 files). */
export function pluginConfig(config: DaemonConfig, type: string, id: string): Record<string, unknown> {
  return config.plugins[`${type}.${id}`] ?? config.plugins[id] ?? {};
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function str(t: Record<string, unknown>, key: string, path: string): string | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalidArgument(`Malformed config ${path}: "${key}" must be a string`);
  return v;
}

function num(t: Record<string, unknown>, key: string, path: string): number | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" && typeof v !== "bigint") {
    throw invalidArgument(`Malformed config ${path}: "${key}" must be a number`);
  }
  return Number(v);
}

function strList(t: Record<string, unknown>, key: string, path: string): string[] {
  const v = t[key];
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
