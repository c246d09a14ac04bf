/**
 * Device nodes of the host as runtime-spec LinuxDevice entries, as containerd's oci.HostDevices and
 * oci.WithDevices read them (oci/utils_unix.go): lstat of each node, /dev walked in name order, a few
 * folders and /dev/console left out.
 */
import { invalidArgument } from "../base/errors.ts";
import type { SpecOpt } from "./opts.ts";

/** runtime-spec's LinuxDevice, fields in Go's order. */
export interface LinuxDevice {
  path: string;
  type: string;
  major: number;
  minor: number;
  /** The permission bits of the node (st_mode without the file type), as Go's os.FileMode number. */
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/** Folders of /dev that hold no devices of the container's own (runc mounts pts, shm, mqueue itself). */
const SKIPPED_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

const S_IFMT = 0o170000;
const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;

/** glibc's major()/minor() of a dev_t. */
export function devMajor(dev: number): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}

export function devMinor(dev: number): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

class NotADevice extends Error {}

/** containerd's DeviceFromPath: a block, character or FIFO node (symlinks are not followed). */
export async function deviceFromPath(path: string): Promise<LinuxDevice> {
  const st = await Deno.lstat(path);
  const mode = st.mode ?? 0;
  const type = { [S_IFBLK]: "b", [S_IFCHR]: "c", [S_IFIFO]: "p" }[mode & S_IFMT];
  if (!type) throw new NotADevice(`${path} is not a device node`);
  const rdev = st.rdev ?? 0;
  return {
    path,
    type,
    major: devMajor(rdev),
    minor: devMinor(rdev),
    fileMode: mode & ~S_IFMT,
    uid: st.uid ?? 0,
    gid: st.gid ?? 0,
  };
}

const join = (a: string, b: string) => `${a.replace(/\/+$/, "")}/${b}`;

/**
 * containerd's getDevices: the device at `path`, or every device under the folder `path` (FIFOs and
 * non-devices skipped), renamed under `containerPath` when it is given.
 */
export async function devicesFromPath(path: string, containerPath = ""): Promise<LinuxDevice[]> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (err) {
    throw invalidArgument(`Cannot stat device path "${path}": ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory) {
    let dev: LinuxDevice;
    try {
      dev = await deviceFromPath(path);
    } catch (err) {
      throw invalidArgument(`Cannot use "${path}" as a device: ${(err as Error).message}`, { cause: err });
    }
    if (containerPath !== "") dev.path = containerPath;
    return [dev];
  }
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(path)) entries.push(e);
  // Go's os.ReadDir sorts by name.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: LinuxDevice[] = [];
  for (const e of entries) {
    const full = join(path, e.name);
    if (e.isDirectory) {
      if (SKIPPED_DIRS.has(e.name)) continue;
      out.push(...await devicesFromPath(full, containerPath !== "" ? join(containerPath, e.name) : ""));
      continue;
    }
    if (e.name === "console") continue;
    let dev: LinuxDevice;
    try {
      dev = await deviceFromPath(full);
    } catch (err) {
      if (err instanceof NotADevice || err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    if (dev.type === "p") continue;
    if (containerPath !== "") dev.path = join(containerPath, e.name);
    out.push(dev);
  }
  return out;
}

/** containerd's HostDevices: every device node under /dev. */
export function hostDevices(): Promise<LinuxDevice[]> {
  return devicesFromPath("/dev");
}

/**
 * containerd's oci.WithDevices, given the devices devicesFromPath() read: each in the container, with a
 * cgroup rule allowing `permissions`.
 */
export function withDevices(devices: readonly LinuxDevice[], permissions: string): SpecOpt {
  return (s) => {
    const linux = s.linux ??= {};
    const resources = linux.resources ??= {};
    for (const d of devices) {
      (linux.devices ??= []).push({ ...d });
      (resources.devices ??= []).push({
        allow: true,
        type: d.type,
        major: d.major,
        minor: d.minor,
        access: permissions,
      });
    }
  };
}
