/**
 * The /etc/hosts and /etc/resolv.conf of Docker-style containers, as nerdctl's hostsstore keeps them:
 * per container `<dataStore>/etchosts/<ns>/<id>/hosts` (bind-mounted into the container as /etc/hosts)
 * and `meta.json` (its names and its address on each network). When a container joins or leaves a
 * network, every container of the namespace that shares a network with it gets its hosts file rewritten,
 * so containers find each other by name, hostname and alias (and `<name>.<network>` on user networks).
 *
 * Hosts files are rewritten in place (truncated and written, same inode): a rename would leave the
 * running container's bind mount on the old file.
 */
import { withFileLock } from "./file_lock.ts";

/** What the hosts store knows of one attached container. */
export interface HostsMeta {
  readonly id: string;
  readonly hostname: string;
  /** The container's name (`nerdctl/name`); may be empty. */
  readonly name: string;
  /** Extra names (compose's service name). */
  readonly aliases: readonly string[];
  /** Network name → the container's address there (no prefix length). */
  readonly networks: Readonly<Record<string, string>>;
}

/** The default network: its names get no `.bridge` suffix (nerdctl's createLine). */
const DEFAULT_NETWORK = "bridge";
const MARKER_BEGIN = "# <nerdctl>";
const MARKER_END = "# </nerdctl>";
const LOCALHOST = ["127.0.0.1\tlocalhost localhost.localdomain", "::1\t\tlocalhost localhost.localdomain"];

export class HostsStore {
  readonly #root: string;

  /** The store of one namespace: `<dataStore>/etchosts/<namespace>`. */
  constructor(dataStore: string, readonly namespace: string) {
    this.#root = `${dataStore}/etchosts/${namespace}`;
  }

  dir(id: string): string {
    return `${this.#root}/${id}`;
  }

  /** The file the container gets as /etc/hosts. */
  hostsPath(id: string): string {
    return `${this.dir(id)}/hosts`;
  }

  /**
   * Writes the container's hosts file before it is created (the run command bind-mounts it, so it must
   * exist): the localhost lines, and the hostname on 127.0.1.1 as Debian does, so a container without a
   * network still resolves its own name. The hook replaces that line with the container's addresses.
   */
  async writeInitialHosts(id: string, hostname: string): Promise<string> {
    await Deno.mkdir(this.dir(id), { recursive: true, mode: 0o755 });
    const lines = [MARKER_BEGIN, ...LOCALHOST];
    if (hostname) lines.push(`127.0.1.1\t${hostname}`);
    lines.push(MARKER_END);
    const path = this.hostsPath(id);
    // Synchronous: an async write makes a CLI process load Deno's web streams code first (~4 ms).
    Deno.writeTextFileSync(path, `${lines.join("\n")}\n`, { mode: 0o644 });
    return path;
  }

  /** Records the container's addresses and rewrites the hosts files of everyone it shares a network with. */
  async attach(meta: HostsMeta): Promise<void> {
    await this.#locked(async () => {
      await Deno.mkdir(this.dir(meta.id), { recursive: true, mode: 0o755 });
      const metaPath = `${this.dir(meta.id)}/meta.json`;
      await Deno.writeTextFile(`${metaPath}.tmp`, JSON.stringify(meta), { mode: 0o600 });
      await Deno.rename(`${metaPath}.tmp`, metaPath);
      await this.#rewrite(Object.keys(meta.networks));
    });
  }

  /** Forgets the container's addresses (it keeps its hosts file) and rewrites its former peers' files. */
  async detach(id: string): Promise<void> {
    await this.#locked(async () => {
      const meta = await this.#read(id);
      if (!meta) return;
      await Deno.remove(`${this.dir(id)}/meta.json`).catch(ignoreNotFound);
      await this.#rewrite(Object.keys(meta.networks));
    });
  }

  /** Deletes the container's folder (when the container is removed), detaching it first. */
  async remove(id: string): Promise<void> {
    await this.detach(id);
    await Deno.remove(this.dir(id), { recursive: true }).catch(ignoreNotFound);
  }

  /** The attached containers of the namespace. */
  async list(): Promise<HostsMeta[]> {
    const metas: HostsMeta[] = [];
    for (const id of await subdirs(this.#root)) {
      const meta = await this.#read(id);
      if (meta) metas.push(meta);
    }
    return metas;
  }

  async #read(id: string): Promise<HostsMeta | undefined> {
    try {
      return readMeta(JSON.parse(await Deno.readTextFile(`${this.dir(id)}/meta.json`)));
    } catch {
      return undefined; // none, or half a file from a crash: not attached
    }
  }

  /** Rewrites the hosts file of every attached container on one of `networks`. */
  async #rewrite(networks: readonly string[]): Promise<void> {
    const all = await this.list();
    for (const me of all) {
      if (!Object.keys(me.networks).some((n) => networks.includes(n))) continue;
      const path = this.hostsPath(me.id);
      let previous = "";
      try {
        previous = await Deno.readTextFile(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      // Same inode: truncate and write, never rename (the container's bind mount holds this file).
      await Deno.writeTextFile(path, renderHosts(me, all, previous), { mode: 0o644 });
    }
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(`${this.#root}/.lock`, fn);
  }
}

/**
 * The hosts file of `me`: the lines someone added outside the marked block (loopback ones dropped, as
 * nerdctl does), then the block: localhost, and one line per address of a container on a network `me`
 * is on, naming it by hostname, name and aliases (with `.<network>` forms on user networks).
 */
export function renderHosts(me: HostsMeta, all: readonly HostsMeta[], previous = ""): string {
  const out = keptLines(previous);
  out.push(MARKER_BEGIN, ...LOCALHOST);
  const entries: [string, string[]][] = [];
  for (const other of all) {
    for (const [network, ip] of Object.entries(other.networks)) {
      if (!(network in me.networks) || ip === "") continue;
      const names: string[] = [];
      for (const base of [other.hostname, other.name, ...other.aliases]) {
        if (!base) continue;
        names.push(base);
        if (network !== DEFAULT_NETWORK) names.push(`${base}.${network}`);
      }
      if (names.length > 0) entries.push([ip, [...new Set(names)]]);
    }
  }
  entries.sort(([a], [b]) => compareIp(a, b));
  for (const [ip, names] of entries) out.push(`${ip.padEnd(15)} ${names.join(" ")}`);
  out.push(MARKER_END);
  return `${out.join("\n")}\n`;
}

/** nerdctl's parseHostsButSkipMarkedRegion: what is outside the marked block, loopback lines dropped. */
function keptLines(text: string): string[] {
  const kept: string[] = [];
  let skip = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim().replaceAll("\t", " ");
    if (line.startsWith("#")) {
      const comment = line.slice(1).trim();
      if (comment === "<nerdctl>") skip = true;
      else if (comment === "</nerdctl>") {
        skip = false;
        continue;
      }
    }
    if (skip || line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const [ip, ...names] = line.split(/ +/);
    if (ip === "127.0.0.1" || ip === "::1" || names.length === 0) continue;
    kept.push(line);
  }
  return kept;
}

function compareIp(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  if (pa.length === 4 && pb.length === 4) {
    for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function readMeta(o: unknown): HostsMeta | undefined {
  if (typeof o !== "object" || o === null) return undefined;
  const m = o as Record<string, unknown>;
  if (typeof m.id !== "string" || typeof m.networks !== "object" || m.networks === null) return undefined;
  const networks: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.networks as Record<string, unknown>)) {
    if (typeof v === "string") networks[k] = v;
  }
  return {
    id: m.id,
    hostname: typeof m.hostname === "string" ? m.hostname : "",
    name: typeof m.name === "string" ? m.name : "",
    aliases: Array.isArray(m.aliases) ? m.aliases.filter((a): a is string => typeof a === "string") : [],
    networks,
  };
}

/** Every attached container of every namespace of the data store (what `network rm` must not pull from). */
export async function attachedContainers(
  dataStore: string,
): Promise<{ namespace: string; meta: HostsMeta }[]> {
  const found: { namespace: string; meta: HostsMeta }[] = [];
  for (const namespace of await subdirs(`${dataStore}/etchosts`)) {
    for (const meta of await new HostsStore(dataStore, namespace).list()) found.push({ namespace, meta });
  }
  return found;
}

async function subdirs(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names.sort();
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

/** Docker's fallback when the host has no usable resolver (libnetwork's defaultIPv4Dns). */
const FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"];

export interface ResolvConfOptions {
  /** `--dns`: these resolvers instead of the host's. */
  readonly dns?: readonly string[];
  /** `--dns-search`: these search domains instead of the host's. */
  readonly search?: readonly string[];
  /** `--dns-option`: these options instead of the host's. */
  readonly options?: readonly string[];
}

/**
 * A container's resolv.conf from the host's: its loopback nameservers dropped (they answer only inside
 * the host's own network namespace), or the `--dns` servers instead; Google's resolvers when none is
 * left, as Docker does.
 */
export function resolvConf(hostResolv: string, options: ResolvConfOptions = {}): string {
  const nameservers: string[] = [];
  let search: string[] = [];
  let opts: string[] = [];
  for (const raw of hostResolv.split("\n")) {
    const [key, ...values] = raw.trim().split(/\s+/);
    if (key === "nameserver" && values[0] && !isLoopback(values[0])) nameservers.push(values[0]);
    else if (key === "search" || key === "domain") search = values;
    else if (key === "options") opts = [...opts, ...values];
  }
  const servers = options.dns && options.dns.length > 0
    ? [...options.dns]
    : nameservers.length > 0
    ? nameservers
    : FALLBACK_NAMESERVERS;
  if (options.search && options.search.length > 0) search = [...options.search];
  if (options.options && options.options.length > 0) opts = [...options.options];
  const lines: string[] = [];
  if (search.length > 0) lines.push(`search ${search.join(" ")}`);
  for (const s of servers) lines.push(`nameserver ${s}`);
  if (opts.length > 0) lines.push(`options ${opts.join(" ")}`);
  return `${lines.join("\n")}\n`;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1";
}

/**
 * The host's resolv.conf text: /etc/resolv.conf, unless it only points at systemd-resolved's stub
 * (127.0.0.53), whose real upstream servers /run/systemd/resolve/resolv.conf lists (nerdctl does the same).
 */
export async function hostResolvConf(
  etc = "/etc/resolv.conf",
  resolved = "/run/systemd/resolve/resolv.conf",
): Promise<string> {
  let text = "";
  try {
    text = await Deno.readTextFile(etc);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const servers = text.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => f[0] === "nameserver");
  if (servers.length > 0 && servers.every((f) => f[1] === "127.0.0.53")) {
    try {
      return await Deno.readTextFile(resolved);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return text;
}
