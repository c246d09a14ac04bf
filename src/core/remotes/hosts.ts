/**
 * Registry hosts for a reference's domain, configured like containerd's `hosts.toml` under a config path:
 * `<config_path>/<host>/hosts.toml` (with `host:port` spelled `host_port_` or as is), else
 * `<config_path>/_default/hosts.toml`. Mirrors (`[host."url"]`) come first, in file order; the upstream
 * (`server`, or the reference's own host) comes last.
 */

import { parse as parseToml } from "smol-toml";
import { invalidArgument } from "../../base/errors.ts";

export type Capability = "pull" | "resolve" | "push";
export const ALL_CAPABILITIES: ReadonlySet<Capability> = new Set(["pull", "resolve", "push"]);

export interface RegistryHost {
  readonly scheme: "http" | "https";
  /** `host[:port]` to connect to. */
  readonly host: string;
  /** API root path: "/v2" unless override_path gives another. */
  readonly path: string;
  readonly capabilities: ReadonlySet<Capability>;
  /** Extra request headers. */
  readonly header: Readonly<Record<string, readonly string[]>>;
  /** PEM files with extra CA certificates. */
  readonly caFiles: readonly string[];
  readonly skipVerify?: boolean;
}

export interface HostsOptions {
  /** containerd's `config_path` for registry hosts (e.g. /etc/containerd/certs.d); none means defaults. */
  readonly configPath?: string;
  /** Talk plain HTTP to the default upstream (like `ctr --plain-http`). */
  readonly plainHttp?: boolean;
  /** Skip TLS verification for the default upstream (like `ctr --skip-verify`). */
  readonly skipVerify?: boolean;
  /**
   * The CRI's legacy `registry.mirrors` (read when no config path is set): endpoint URLs by registry
   * host, `*` for every host without its own entry.
   */
  readonly mirrors?: Readonly<Record<string, readonly string[]>>;
}

/** The hosts to try for a reference domain, in order. */
export async function configureHosts(domain: string, options: HostsOptions = {}): Promise<RegistryHost[]> {
  if (!options.configPath && options.mirrors) return mirrorHosts(domain, options.mirrors);
  let hosts: PartialHost[] | undefined;
  if (options.configPath) {
    const dir = await hostDir(options.configPath, domain);
    if (dir) hosts = await loadHostDir(dir);
  }
  hosts ??= [emptyHost()];
  const last = hosts[hosts.length - 1];
  if (last && last.host === "") {
    last.path = "/v2";
    last.capabilities = new Set(ALL_CAPABILITIES);
    if (domain === "docker.io") {
      last.scheme = "https";
      last.host = "registry-1.docker.io";
    } else {
      last.host = domain;
      last.scheme = options.plainHttp || isLocalhostPlain(domain) ? "http" : "https";
    }
    if (options.skipVerify !== undefined && last.skipVerify === undefined) {
      last.skipVerify = options.skipVerify;
    }
  }
  return hosts;
}

/**
 * containerd's CRI registryEndpoints: the host's mirrors (or `*`'s), each without a scheme taking http
 * for loopback hosts and https otherwise, then the upstream unless a mirror is the upstream already. The
 * hosts may resolve and pull, never push.
 */
export function mirrorHosts(
  domain: string,
  mirrors: Readonly<Record<string, readonly string[]>>,
): RegistryHost[] {
  const upstream = domain === "docker.io" ? "registry-1.docker.io" : domain;
  const endpoints = [...(mirrors[domain] ?? mirrors["*"] ?? [])].map((e) =>
    e.includes("://") ? e : `${isLoopback(hostOf(e)) ? "http" : "https"}://${e}`
  );
  const urls = endpoints.map((e) => {
    try {
      return new URL(e);
    } catch {
      throw invalidArgument(`Invalid registry mirror endpoint "${e}" for ${domain}: not a URL`);
    }
  });
  if (!urls.some((u) => u.host === domain)) {
    urls.push(new URL(`${isLoopback(hostOf(upstream)) ? "http" : "https"}://${upstream}`));
  }
  return urls.map((u) => {
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw invalidArgument(`Invalid registry mirror endpoint "${u}" for ${domain}: use http or https`);
    }
    const path = u.pathname === "/" || u.pathname === "" ? "/v2" : u.pathname.replace(/\/$/, "");
    return {
      scheme: u.protocol === "http:" ? "http" : "https",
      host: u.host,
      path,
      capabilities: new Set<Capability>(["resolve", "pull"]),
      header: {},
      caFiles: [],
    };
  });
}

function hostOf(hostPort: string): string {
  const m = /^(\[[^\]]+\]|[^:/]+)/.exec(hostPort);
  return m?.[1] ?? hostPort;
}

/** docker.IsLocalhost: localhost, 127.0.0.0/8 or ::1, on any port. */
function isLoopback(name: string): boolean {
  return name === "localhost" || name === "[::1]" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name);
}

interface PartialHost {
  scheme: "http" | "https";
  host: string;
  path: string;
  capabilities: Set<Capability>;
  header: Record<string, string[]>;
  caFiles: string[];
  skipVerify?: boolean;
}

const emptyHost = (): PartialHost => ({
  scheme: "https",
  host: "",
  path: "/v2",
  capabilities: new Set(ALL_CAPABILITIES),
  header: {},
  caFiles: [],
});

/**
 * As containerd: a loopback registry on a port other than 443 is reached over plain HTTP by default.
 */
function isLocalhostPlain(domain: string): boolean {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(domain);
  if (!m) return false;
  const name = m[1]!;
  const port = m[2];
  const loopback = name === "localhost" || name === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(name);
  return loopback && port !== undefined && port !== "443";
}

async function hostDir(root: string, domain: string): Promise<string | undefined> {
  const candidates: string[] = [];
  const colon = domain.lastIndexOf(":");
  if (colon > 0) candidates.push(`${root}/${domain.slice(0, colon)}_${domain.slice(colon + 1)}_`);
  candidates.push(`${root}/${domain}`, `${root}/_default`);
  for (const dir of candidates) {
    try {
      if ((await Deno.stat(dir)).isDirectory) return dir;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return undefined;
}

async function loadHostDir(dir: string): Promise<PartialHost[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(`${dir}/hosts.toml`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (text.trim() === "") return [await certFilesHost(dir)];
  return parseHostsFile(text, dir);
}

/** Docker's certs.d layout: `*.crt` files are CA certificates for the upstream. */
async function certFilesHost(dir: string): Promise<PartialHost> {
  const host = emptyHost();
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".crt")) host.caFiles.push(`${dir}/${entry.name}`);
  }
  host.caFiles.sort();
  return host;
}

/** Parses a hosts.toml; `dir` resolves relative `ca` paths. Exported for tests. */
export function parseHostsToml(text: string, dir: string): RegistryHost[] {
  return parseHostsFile(text, dir);
}

function parseHostsFile(text: string, dir: string): PartialHost[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`Hosts file ${dir}/hosts.toml is not valid TOML: ${(err as Error).message}`);
  }
  const out: PartialHost[] = [];
  const table = doc.host;
  if (table !== undefined) {
    if (!isTable(table)) throw invalidArgument(`Hosts file ${dir}/hosts.toml: "host" must be a table`);
    // smol-toml keeps tables in file order, which is the mirror order.
    for (const [server, config] of Object.entries(table)) {
      if (!isTable(config)) {
        throw invalidArgument(`Hosts file ${dir}/hosts.toml: host "${server}" must be a table`);
      }
      out.push(parseHostConfig(server, config, dir));
    }
  }
  out.push(parseHostConfig(typeof doc.server === "string" ? doc.server : "", doc, dir));
  return out;
}

function parseHostConfig(server: string, config: Record<string, unknown>, dir: string): PartialHost {
  const where = `Hosts file ${dir}/hosts.toml${server ? ` (host "${server}")` : ""}`;
  const result = emptyHost();
  const overridePath = config.override_path === true;
  if (server !== "") {
    let url: URL;
    try {
      url = new URL(/^https?:\/\//.test(server) ? server : `https://${server}`);
    } catch {
      throw invalidArgument(`${where}: server "${server}" is not a URL`);
    }
    result.scheme = url.protocol === "http:" ? "http" : "https";
    result.host = url.host;
    let path = url.pathname.replace(/\/+$/, "");
    if (!overridePath && !path.endsWith("/v2")) path += "/v2";
    result.path = path;
  }
  if (config.capabilities !== undefined) {
    if (!Array.isArray(config.capabilities)) throw invalidArgument(`${where}: capabilities must be a list`);
    result.capabilities = new Set();
    for (const c of config.capabilities) {
      const cap = String(c).toLowerCase();
      // containerd also knows "referrers"; Berth has no referrers API yet, so it is accepted and ignored.
      if (cap === "referrers") continue;
      if (cap !== "pull" && cap !== "resolve" && cap !== "push") {
        throw invalidArgument(`${where}: unknown capability "${c}"`);
      }
      result.capabilities.add(cap);
    }
  }
  if (config.skip_verify !== undefined) {
    if (typeof config.skip_verify !== "boolean") {
      throw invalidArgument(`${where}: skip_verify must be a boolean`);
    }
    result.skipVerify = config.skip_verify;
  }
  if (config.ca !== undefined) {
    const list = typeof config.ca === "string" ? [config.ca] : config.ca;
    if (!Array.isArray(list) || !list.every((p) => typeof p === "string")) {
      throw invalidArgument(`${where}: ca must be a path or a list of paths`);
    }
    result.caFiles = list.map((p) => p.startsWith("/") ? p : `${dir}/${p}`);
  }
  if (config.header !== undefined) {
    if (!isTable(config.header)) throw invalidArgument(`${where}: header must be a table`);
    for (const [key, value] of Object.entries(config.header)) {
      if (typeof value === "string") result.header[key] = [value];
      else if (Array.isArray(value) && value.every((v) => typeof v === "string")) result.header[key] = value;
      else throw invalidArgument(`${where}: header "${key}" must be a string or a list of strings`);
    }
  }
  return result;
}

const isTable = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
