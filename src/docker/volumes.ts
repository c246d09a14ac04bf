/**
 * Named volumes, stored as nerdctl stores them so either tool reads the other's:
 * `<dataStore>/volumes/<ns>/<name>/_data` holds the content, `volume.json` beside it the labels
 * (`{"labels": {...}}`; Berth adds `createdAt`). Which volumes are in use is the caller's knowledge
 * (containers record theirs in the `nerdctl/mounts` label): this store only refuses to remove those.
 */
import { fsSyscalls } from "../../ffi/fs.ts";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { failedPrecondition, invalidArgument, notFound } from "../base/errors.ts";
import { jsonLabel, LABELS } from "./labels.ts";
import type { DockerPaths } from "./paths.ts";
import { copyChildren, type TreeCopyOptions, type TreeCopyResult } from "./tree_copy.ts";

/** `docker volume inspect`'s shape. */
export interface Volume {
  readonly Name: string;
  readonly Driver: "local";
  readonly Mountpoint: string;
  readonly Labels: Record<string, string>;
  readonly Scope: "local";
  readonly CreatedAt: string;
}

/** What volume.json holds. */
interface VolumeFile {
  labels?: Record<string, string> | null;
  createdAt?: string;
}

export const DATA_DIR = "_data";
const VOLUME_JSON = "volume.json";
/** Beside `_data`: the volume got its image content once and is not filled again. */
const INITIALISED = ".initialised";
/** A volume made without a name is labelled so, and `volume prune` without `-a` removes only these. */
export const ANONYMOUS_LABEL = LABELS.anonymousVolumes;

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Throws unless `name` is usable as a volume name (Docker's rule). */
export function checkVolumeName(name: string): void {
  if (!NAME.test(name) || name.length > 255) {
    throw invalidArgument(`Invalid volume name "${name}": use [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
  }
}

/** The folder of the namespace's volumes. */
export function volumesDir(paths: DockerPaths): string {
  return `${paths.dataStore}/volumes/${paths.namespace}`;
}

/** The folder of one volume (its `_data` and `volume.json`). */
export function volumeDir(paths: DockerPaths, name: string): string {
  return `${volumesDir(paths)}/${name}`;
}

function randomName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Docker's time format: RFC 3339 to the second. */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

async function readVolume(paths: DockerPaths, name: string): Promise<Volume | undefined> {
  const dir = volumeDir(paths, name);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(`${dir}/${DATA_DIR}`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  let file: VolumeFile = {};
  try {
    file = JSON.parse(await Deno.readTextFile(`${dir}/${VOLUME_JSON}`)) as VolumeFile;
  } catch { /* nerdctl writes volume.json only with labels; a volume without one has none */ }
  return {
    Name: name,
    Driver: "local",
    Mountpoint: `${dir}/${DATA_DIR}`,
    Labels: { ...(file.labels ?? {}) },
    Scope: "local",
    CreatedAt: file.createdAt ?? rfc3339(info.birthtime ?? info.mtime ?? new Date(0)),
  };
}

/**
 * Makes a volume, or returns the one of that name as Docker does (its labels unchanged). Without a name,
 * an anonymous volume with a 64-hex name.
 */
export async function createVolume(
  paths: DockerPaths,
  name?: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<Volume> {
  const anonymous = name === undefined || name === "";
  const volName = anonymous ? randomName() : name;
  checkVolumeName(volName);
  const existing = await readVolume(paths, volName);
  if (existing) return existing;
  const dir = volumeDir(paths, volName);
  await Deno.mkdir(volumesDir(paths), { recursive: true, mode: 0o700 });
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const file: VolumeFile = {
    labels: { ...labels, ...(anonymous ? { [ANONYMOUS_LABEL]: "" } : {}) },
    createdAt: rfc3339(new Date()),
  };
  await writeFileAtomic(`${dir}/${VOLUME_JSON}`, JSON.stringify(file, null, 4), { mode: 0o644 });
  try {
    await Deno.mkdir(`${dir}/${DATA_DIR}`, { mode: 0o755 });
    await Deno.chmod(`${dir}/${DATA_DIR}`, 0o755);
  } catch (err) {
    // Made by a concurrent create of the same name: theirs is as good as ours.
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  return (await readVolume(paths, volName))!;
}

/** `docker volume inspect NAME`. */
export async function inspectVolume(paths: DockerPaths, name: string): Promise<Volume> {
  const volume = NAME.test(name) ? await readVolume(paths, name) : undefined;
  if (!volume) throw notFound(`No such volume: ${name}`);
  return volume;
}

/** Docker's `volume ls --filter` keys that need no daemon: the in-use set is the caller's. */
export interface VolumeFilters {
  /** `label=K` (present) or `label=K=V`; every one must match. */
  readonly label?: readonly string[];
  /** Substrings of the name; any one may match. */
  readonly name?: readonly string[];
  /** true: only volumes no container uses; false: only used ones. Needs `inUse`. */
  readonly dangling?: boolean;
  readonly inUse?: ReadonlySet<string>;
}

function matches(volume: Volume, filters: VolumeFilters): boolean {
  for (const l of filters.label ?? []) {
    const i = l.indexOf("=");
    const key = i < 0 ? l : l.slice(0, i);
    if (!(key in volume.Labels)) return false;
    if (i >= 0 && volume.Labels[key] !== l.slice(i + 1)) return false;
  }
  if (filters.name?.length && !filters.name.some((n) => volume.Name.includes(n))) return false;
  if (filters.dangling !== undefined) {
    const used = filters.inUse?.has(volume.Name) ?? false;
    if (filters.dangling === used) return false;
  }
  return true;
}

/** The namespace's volumes, sorted by name, that match every filter given. */
export async function listVolumes(paths: DockerPaths, filters: VolumeFilters = {}): Promise<Volume[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(volumesDir(paths))) {
      if (e.isDirectory && NAME.test(e.name)) names.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const out: Volume[] = [];
  for (const name of names.sort()) {
    const v = await readVolume(paths, name);
    if (v && matches(v, filters)) out.push(v);
  }
  return out;
}

export interface RemoveVolumeOptions {
  /** Names of the volumes containers use (volumesInUse()). */
  readonly inUseBy: ReadonlyMap<string, readonly string[]> | ReadonlySet<string>;
}

/** Removes a volume and its content; refuses while a container uses it. */
export async function removeVolume(
  paths: DockerPaths,
  name: string,
  options: RemoveVolumeOptions,
): Promise<void> {
  await inspectVolume(paths, name);
  if (options.inUseBy.has(name)) {
    const users: readonly string[] = options.inUseBy instanceof Map ? options.inUseBy.get(name) ?? [] : [];
    const who = users.length ? `: ${users.map((id) => id.slice(0, 12)).join(", ")}` : "";
    throw failedPrecondition(`Cannot remove volume "${name}": volume is in use${who}`);
  }
  const dir = volumeDir(paths, name);
  // Renamed away first: a half-removed volume is never seen under its name.
  const doomed = `${volumesDir(paths)}/.removing-${name}-${randomName().slice(0, 8)}`;
  await Deno.rename(dir, doomed);
  await Deno.remove(doomed, { recursive: true });
}

export interface PruneOptions {
  readonly inUseBy: ReadonlyMap<string, readonly string[]> | ReadonlySet<string>;
  /** Every unused volume, not only anonymous ones (`-a`). */
  readonly all?: boolean;
}

/** Removes unused volumes (anonymous ones only unless `all`); returns the names removed. */
export async function pruneVolumes(paths: DockerPaths, options: PruneOptions): Promise<string[]> {
  const removed: string[] = [];
  for (const v of await listVolumes(paths)) {
    if (options.inUseBy.has(v.Name)) continue;
    if (!options.all && !(ANONYMOUS_LABEL in v.Labels)) continue;
    await removeVolume(paths, v.Name, options);
    removed.push(v.Name);
  }
  return removed;
}

/** One entry of a container's `nerdctl/mounts` label, as nerdctl writes it. */
export interface MountLabel {
  readonly Type: string;
  readonly Name?: string;
  readonly Source: string;
  readonly Destination: string;
  readonly RW: boolean;
}

/**
 * The volumes the containers use, each with the ids of its users: from `nerdctl/mounts` (Type
 * "volume") and `nerdctl/anonymous-volumes`.
 */
export function volumesInUse(
  containers: readonly { readonly id?: string; readonly labels: Readonly<Record<string, string>> }[],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (name: string, id: string) => {
    const users = out.get(name) ?? [];
    if (!users.includes(id)) users.push(id);
    out.set(name, users);
  };
  for (const c of containers) {
    const id = c.id ?? "";
    const mounts = jsonLabel<MountLabel[]>(c.labels, LABELS.mounts, []);
    for (const m of Array.isArray(mounts) ? mounts : []) {
      if (m?.Type === "volume" && typeof m.Name === "string" && m.Name) add(m.Name, id);
    }
    const anonymous = jsonLabel<string[]>(c.labels, LABELS.anonymousVolumes, []);
    for (const name of Array.isArray(anonymous) ? anonymous : []) {
      if (typeof name === "string" && name) add(name, id);
    }
  }
  return out;
}

/**
 * Fills a new volume from the image's content at its mount point, as Docker does at first mount: only
 * when the volume is empty and was never filled, and marks it filled. `sourceDir` must already be
 * resolved inside the rootfs (resolveInRoot); symlinks below it are copied as links, never followed.
 * The volume's root takes the source folder's mode and owner. Returns whether anything was copied.
 */
export async function copyUp(
  sourceDir: string,
  volumeDataDir: string,
  options: Pick<TreeCopyOptions, "onSkip" | "sys"> = {},
): Promise<TreeCopyResult | undefined> {
  const marker = `${volumeDataDir.replace(/\/+$/, "").replace(/\/[^/]*$/, "")}/${INITIALISED}`;
  if (await Deno.lstat(marker).then(() => true, () => false)) return undefined;
  let source: Deno.FileInfo;
  try {
    source = await Deno.lstat(sourceDir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  let result: TreeCopyResult | undefined;
  // Docker copies only into an empty volume: content a user put there is theirs.
  const empty = (await Array.fromAsync(Deno.readDir(volumeDataDir))).length === 0;
  if (source.isDirectory && empty) {
    result = await copyChildren(sourceDir, volumeDataDir, options);
    (options.sys ?? fsSyscalls()).lchown(volumeDataDir, source.uid ?? 0, source.gid ?? 0);
    await Deno.chmod(volumeDataDir, (source.mode ?? 0o755) & 0o7777);
  }
  await Deno.writeTextFile(marker, "");
  return result;
}
