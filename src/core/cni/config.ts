/**
 * Network configurations, read as libcni reads them: `*.conflist` files are lists, `*.conf` and `*.json`
 * files hold one plugin and are wrapped into a list of one, and the files of a folder are taken in name
 * order so that the first one that loads is the default network (go-cni's convention; the spec names
 * no default).
 */
import type { NetworkConfigList, PluginConfig } from "./types.ts";
import { isSupportedVersion, pickVersion, SUPPORTED_VERSIONS } from "./version.ts";

export const CONF_EXTENSIONS = [".conflist", ".conf", ".json"] as const;

/** A file of the conf folder that did not load, and why (for status messages and logs). */
export interface ConfigProblem {
  readonly file: string;
  readonly message: string;
}

export interface LoadedConfigs {
  /** The networks that loaded, in file-name order: the first is the default. */
  readonly networks: readonly NetworkConfigList[];
  readonly problems: readonly ConfigProblem[];
}

/** The spec's rule for container ids and network names (libcni's ValidateContainerID/NetworkName). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function isValidName(name: string): boolean {
  return NAME.test(name);
}

/** Why `ifname` cannot be an interface name (Linux's dev_valid_name), or undefined when it can. */
export function interfaceNameProblem(ifname: string): string | undefined {
  if (ifname === "") return "it is empty";
  if (new TextEncoder().encode(ifname).length > 15) return "it is longer than 15 bytes";
  if (ifname === "." || ifname === "..") return "it is . or ..";
  if (/[/:\s]/.test(ifname)) return "it contains / or : or whitespace";
  return undefined;
}

/** A malformed configuration; the message names the file (when there is one) and the problem. */
export class ConfigError extends Error {
  readonly file: string;
  readonly problem: string;

  constructor(file: string, problem: string) {
    super(file ? `Cannot load CNI config ${file}: ${problem}` : `Cannot load CNI config: ${problem}`);
    this.name = "ConfigError";
    this.file = file;
    this.problem = problem;
  }
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function parseJson(text: string, file: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, `invalid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new ConfigError(file, "the top level is not a JSON object");
  return value;
}

function readPlugin(raw: unknown, where: string, file: string): PluginConfig {
  if (!isObject(raw)) throw new ConfigError(file, `${where} is not a JSON object`);
  const type = raw.type;
  if (typeof type !== "string" || type === "") throw new ConfigError(file, `${where} has no "type"`);
  if (type.includes("/")) {
    throw new ConfigError(file, `${where} has type ${JSON.stringify(type)}, which is a path`);
  }
  const caps = raw.capabilities ?? {};
  if (!isObject(caps) || Object.values(caps).some((v) => typeof v !== "boolean")) {
    throw new ConfigError(file, `${where} has "capabilities" that are not a map of booleans`);
  }
  return { type, capabilities: caps as Record<string, boolean>, raw };
}

function readBool(o: Json, key: string, file: string): boolean {
  const v = o[key];
  if (v === undefined) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "string" && /^(true|false)$/i.test(v)) return v.toLowerCase() === "true";
  throw new ConfigError(file, `"${key}" is ${JSON.stringify(v)}, not true or false`);
}

function readVersion(o: Json, file: string): string {
  const single = o.cniVersion;
  if (single !== undefined && typeof single !== "string") {
    throw new ConfigError(file, `"cniVersion" is not a string`);
  }
  const many = o.cniVersions;
  if (many !== undefined && (!Array.isArray(many) || many.some((v) => typeof v !== "string"))) {
    throw new ConfigError(file, `"cniVersions" is not a list of strings`);
  }
  const version = pickVersion(single || undefined, many as string[] | undefined);
  if (version === "") throw new ConfigError(file, `no "cniVersion"`);
  if (!isSupportedVersion(version)) {
    throw new ConfigError(
      file,
      `cniVersion ${JSON.stringify(version)} is not supported (supported: ${SUPPORTED_VERSIONS.join(", ")})`,
    );
  }
  return version;
}

function readName(o: Json, file: string): string {
  const name = o.name;
  if (typeof name !== "string" || name === "") throw new ConfigError(file, `no network "name"`);
  if (!isValidName(name)) {
    throw new ConfigError(file, `network name ${JSON.stringify(name)} has characters outside [a-zA-Z0-9_.-]`);
  }
  return name;
}

/** A network configuration list from its JSON text; `file` only names it in errors. */
export function parseConfList(text: string, file: string): NetworkConfigList {
  const o = parseJson(text, file);
  const name = readName(o, file);
  const cniVersion = readVersion(o, file);
  const plugins = o.plugins;
  if (plugins === undefined) {
    throw new ConfigError(file, `no "plugins" list (a single plugin belongs in a .conf file)`);
  }
  if (!Array.isArray(plugins)) throw new ConfigError(file, `"plugins" is not a list`);
  if (plugins.length === 0) throw new ConfigError(file, `"plugins" is empty`);
  return {
    name,
    cniVersion,
    disableCheck: readBool(o, "disableCheck", file),
    plugins: plugins.map((p, i) => readPlugin(p, `plugins[${i}]`, file)),
    source: file,
    bytes: text,
  };
}

/** A single-plugin configuration (`.conf`), wrapped into a list of one as libcni's ConfListFromConf does. */
export function parseConf(text: string, file: string): NetworkConfigList {
  const o = parseJson(text, file);
  if (o.plugins !== undefined) {
    throw new ConfigError(file, `it holds a "plugins" list; a list belongs in a .conflist file`);
  }
  const name = readName(o, file);
  const cniVersion = readVersion(o, file);
  const plugin = readPlugin(o, "the plugin", file);
  // libcni keeps the plugin's whole object as the list's only entry; name and version move up.
  const bytes = JSON.stringify({ cniVersion, name, plugins: [o] });
  return { name, cniVersion, disableCheck: false, plugins: [plugin], source: file, bytes };
}

/** Parses a file's text by its extension. */
export function parseConfigFile(text: string, file: string): NetworkConfigList {
  return file.endsWith(".conflist") ? parseConfList(text, file) : parseConf(text, file);
}

/** The config files of `dir` in name order; none when it does not exist. */
export async function confFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) continue;
      if (CONF_EXTENSIONS.some((ext) => e.name.endsWith(ext))) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  // Byte order, as Go's sort.Strings: localeCompare would put "B" after "a".
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((n) => `${dir}/${n}`);
}

/**
 * Loads every config file of `dir`. A file that does not load is reported and skipped, so one bad file
 * does not take the node's network down; go-cni instead fails the whole load, and with it every pod.
 * Two files naming the same network: the first wins and the second is reported.
 */
export async function loadConfDir(dir: string): Promise<LoadedConfigs> {
  const networks: NetworkConfigList[] = [];
  const problems: ConfigProblem[] = [];
  for (const file of await confFiles(dir)) {
    try {
      const net = parseConfigFile(await Deno.readTextFile(file), file);
      const first = networks.find((n) => n.name === net.name);
      if (first) throw new ConfigError(file, `network "${net.name}" is already defined by ${first.source}`);
      networks.push(net);
    } catch (err) {
      const problem = err instanceof ConfigError ? err.problem : (err as Error).message;
      problems.push({ file, message: problem });
    }
  }
  return { networks, problems };
}

/** containerd's CRI attaches every pod to this one too (go-cni's WithLoNetwork), as interface "lo". */
export const LOOPBACK_NETWORK: NetworkConfigList = parseConfList(
  JSON.stringify({ cniVersion: "0.3.1", name: "cni-loopback", plugins: [{ type: "loopback" }] }),
  "",
);
