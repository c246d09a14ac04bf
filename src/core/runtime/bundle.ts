import { writeFileAtomicSync } from "../../base/atomic_write.ts";
import { unmountAll } from "../mount/mod.ts";
import { validateIdentifier } from "../identifiers/mod.ts";
import { invalidArgument } from "../../base/errors.ts";

/** What the daemon records in a bundle to find and clean up its shim after a restart. */
export interface ShimRecord {
  /** The runtime name the task was created with, e.g. `io.containerd.runc.v2`. */
  readonly runtime: string;
  /** The shim command: binary then leading arguments (Berth's own shim runs as `deno run -A main.ts shim`). */
  readonly command: readonly string[];
}

/**
 * An OCI bundle as containerd's runtime v2 lays it out: `<state>/<ns>/<id>` with config.json and rootfs/,
 * and a `work` symlink to `<root>/<ns>/<id>`, a folder that survives reboots for the shim's own use.
 */
export class Bundle {
  readonly id: string;
  readonly namespace: string;
  readonly path: string;

  constructor(state: string, ns: string, id: string) {
    this.id = id;
    this.namespace = ns;
    this.path = `${state}/${ns}/${id}`;
  }

  static async create(
    dirs: { root: string; state: string },
    ns: string,
    options: { id: string; spec: Uint8Array },
  ): Promise<Bundle> {
    try {
      validateIdentifier("task id", options.id);
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    const b = new Bundle(dirs.state, ns, options.id);
    const work = `${dirs.root}/${ns}/${options.id}`;
    // Synchronous on purpose: these are a dozen small metadata operations on every task create, each
    // ~20 µs as a syscall but ~0.2 ms as a round trip through the blocking pool.
    Deno.mkdirSync(`${dirs.state}/${ns}`, { recursive: true, mode: 0o711 });
    Deno.mkdirSync(b.path, { mode: 0o700 });
    try {
      openToRemappedRoot(b.path, options.spec);
      Deno.mkdirSync(`${b.path}/rootfs`, { mode: 0o711 });
      Deno.mkdirSync(`${dirs.root}/${ns}`, { recursive: true, mode: 0o711 });
      try {
        Deno.removeSync(work, { recursive: true });
      } catch { /* none left over */ }
      // The link first: a daemon killed in between leaves a bundle that names its work folder, so the
      // bundle's delete (at recovery) still finds and removes it.
      Deno.symlinkSync(work, `${b.path}/work`);
      Deno.mkdirSync(work, { mode: 0o711 });
      // containerd writes it 0666 under the daemon's umask (0644); Deno sets the mode past the umask.
      Deno.writeFileSync(`${b.path}/config.json`, options.spec, { mode: 0o644 });
    } catch (err) {
      await b.delete().catch(() => {});
      throw err;
    }
    return b;
  }

  get rootfs(): string {
    return `${this.path}/rootfs`;
  }

  writeShimRecord(record: ShimRecord): void {
    writeFileAtomicSync(`${this.path}/berth-shim.json`, JSON.stringify(record), { mode: 0o600 });
    // containerd's name for the same fact, for tools that read bundles.
    writeFileAtomicSync(`${this.path}/shim-binary-path`, record.command[0] ?? "", { mode: 0o600 });
  }

  async readShimRecord(): Promise<ShimRecord | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(`${this.path}/berth-shim.json`)) as ShimRecord;
    } catch {
      return undefined;
    }
  }

  writeAddress(address: string): void {
    writeFileAtomicSync(`${this.path}/address`, address, { mode: 0o600 });
  }

  async readAddress(): Promise<string | undefined> {
    try {
      return (await Deno.readTextFile(`${this.path}/address`)).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** Unmounts the rootfs, then removes the work folder and the bundle (synchronously: a few small files). */
  delete(): Promise<void> {
    let work: string | undefined;
    try {
      work = Deno.readLinkSync(`${this.path}/work`);
    } catch {
      work = undefined;
    }
    try {
      unmountAll(this.rootfs);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) return Promise.reject(err);
    }
    // The work folder before the bundle: the bundle's `work` link is the only record of it, so a daemon
    // killed in between leaves a bundle whose next delete finishes the job, never an orphaned folder.
    if (work) {
      try {
        Deno.removeSync(work, { recursive: true });
      } catch { /* already gone */ }
    }
    try {
      Deno.removeSync(this.path, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) return Promise.reject(err);
    }
    return Promise.resolve();
  }
}

/**
 * A container in a user namespace mounts its rootfs as the remapped root, which must traverse the
 * bundle: as containerd 1.6 does, the bundle's group becomes the host gid of the container's gid 0 and
 * its mode 0710. Without gid mappings the bundle stays 0700.
 */
function openToRemappedRoot(path: string, spec: Uint8Array): void {
  const gid = remappedRootGid(spec);
  if (gid === undefined) return;
  Deno.chownSync(path, null, gid);
  Deno.chmodSync(path, 0o710);
}

/** The host gid that the spec maps container gid 0 to, if it maps gids at all. */
export function remappedRootGid(spec: Uint8Array): number | undefined {
  const text = new TextDecoder().decode(spec);
  // Most specs have no user namespace: skip parsing them.
  if (!text.includes('"gidMappings"')) return undefined;
  let parsed: { linux?: { gidMappings?: { containerID?: number; hostID?: number }[] } };
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`Cannot read the OCI spec of the bundle: ${(err as Error).message}`);
  }
  const root = parsed.linux?.gidMappings?.find((m) => (m.containerID ?? 0) === 0);
  return root && root.hostID ? root.hostID : undefined;
}
