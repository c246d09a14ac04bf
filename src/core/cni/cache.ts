/**
 * What an ADD returned, kept on disk until the DEL: the spec requires DEL and CHECK to receive the ADD's
 * result as `prevResult`, and a daemon restarted in between has nothing else to give. One file per
 * attachment, `<dir>/results/<network>-<containerID>-<ifname>`, in libcni's own format ("cniCacheV1",
 * the list's bytes in base64 as Go writes a []byte), so a cache written by containerd reads here too.
 */
import { writeFileAtomic } from "../../base/atomic_write.ts";
import { readResult, resultAsVersion } from "./result.ts";
import type { CapabilityArgs, CniArgs, CniResult } from "./types.ts";

export const CACHE_KIND = "cniCacheV1";

/** One attachment as the cache holds it. */
export interface CachedAttachment {
  readonly containerId: string;
  readonly network: string;
  readonly ifname: string;
  readonly netns: string;
  /** The network configuration list the ADD ran, as JSON text. */
  readonly config: string;
  readonly args: CniArgs;
  readonly capabilities: CapabilityArgs;
  /** Undefined only for entries whose result did not read (a DEL then runs without prevResult). */
  readonly result?: CniResult;
}

/** libcni's cachedInfo, field for field. */
interface CacheFile {
  kind: string;
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function unbase64(b64: string): string {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

export class ResultCache {
  readonly #dir: string;

  /** `dir` is the cache's root (libcni's /var/lib/cni); files go to its `results` folder. */
  constructor(dir: string) {
    this.#dir = `${dir}/results`;
  }

  path(network: string, containerId: string, ifname: string): string {
    return `${this.#dir}/${network}-${containerId}-${ifname}`;
  }

  async write(entry: CachedAttachment): Promise<void> {
    const file: CacheFile = {
      kind: CACHE_KIND,
      containerId: entry.containerId,
      config: base64(entry.config),
      ifName: entry.ifname,
      networkName: entry.network,
      netns: entry.netns || undefined,
      cniArgs: entry.args.length > 0 ? entry.args.map(([k, v]) => [k, v]) : undefined,
      capabilityArgs: Object.keys(entry.capabilities).length > 0 ? { ...entry.capabilities } : undefined,
      result: entry.result ? resultAsVersion(entry.result, entry.result.cniVersion) : undefined,
    };
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path(entry.network, entry.containerId, entry.ifname), JSON.stringify(file), {
      mode: 0o600,
    });
  }

  /** The entry of one attachment; undefined when there is none or it does not read as one. */
  async read(network: string, containerId: string, ifname: string): Promise<CachedAttachment | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path(network, containerId, ifname));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    return decode(text);
  }

  /** Every entry of `containerId`, in file-name order (libcni's GetCachedAttachments). */
  async list(containerId: string): Promise<CachedAttachment[]> {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(this.#dir)) {
        if (e.isFile && e.name.includes(`-${containerId}-`)) names.push(e.name);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    names.sort();
    const out: CachedAttachment[] = [];
    for (const name of names) {
      const entry = decode(await Deno.readTextFile(`${this.#dir}/${name}`).catch(() => ""));
      // The name test above is loose ("a-b" ids contain each other); the file's own fields decide.
      if (
        entry && entry.containerId === containerId &&
        name === `${entry.network}-${containerId}-${entry.ifname}`
      ) {
        out.push(entry);
      }
    }
    return out;
  }

  async remove(network: string, containerId: string, ifname: string): Promise<void> {
    await Deno.remove(this.path(network, containerId, ifname)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

function decode(text: string): CachedAttachment | undefined {
  let f: CacheFile;
  try {
    f = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof f !== "object" || f === null || f.kind !== CACHE_KIND) return undefined;
  if (
    typeof f.containerId !== "string" || typeof f.networkName !== "string" || typeof f.ifName !== "string"
  ) {
    return undefined;
  }
  let config = "";
  try {
    config = typeof f.config === "string" ? unbase64(f.config) : "";
  } catch {
    config = "";
  }
  let result: CniResult | undefined;
  try {
    result = f.result ? readResult(f.result, "") : undefined;
  } catch {
    result = undefined;
  }
  const args = Array.isArray(f.cniArgs)
    ? f.cniArgs.filter((p): p is [string, string] =>
      Array.isArray(p) && typeof p[0] === "string" && typeof p[1] === "string"
    )
    : [];
  return {
    containerId: f.containerId,
    network: f.networkName,
    ifname: f.ifName,
    netns: typeof f.netns === "string" ? f.netns : "",
    config,
    args,
    capabilities: typeof f.capabilityArgs === "object" && f.capabilityArgs !== null ? f.capabilityArgs : {},
    result,
  };
}
