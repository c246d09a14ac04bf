/**
 * `docker cp`'s rules over two folders, one of them a container's root (its `/proc/<pid>/root` while it
 * runs, its mounted snapshot when stopped). Container paths are resolved with resolveInRoot, so no
 * symlink of the container reaches the host; the copy itself never writes through a destination link.
 *
 * Ownership, as Docker documents it: files copied into a container belong to root (0:0), files copied out
 * to the user running the command; with `archive` (`-a`) both keep the source's uid and gid.
 */
import { writeTar } from "../client/archive/tar_writer.ts";
import type tar from "tar-stream";
import { Readable } from "node:stream";
import type { ReadableStream as NodeWebReadableStream } from "node:stream/web";
import { fsSyscalls } from "../../ffi/fs.ts";
import { invalidArgument, notFound } from "../base/errors.ts";
import { resolveInRoot } from "../base/root_path.ts";
import { copyChildren, copyTree, type Owner } from "./tree_copy.ts";

/** One side of `cp`: a container's path (`root` set) or a host path. */
export interface CpSide {
  /** The container's root folder on the host; undefined for a host path. */
  readonly root?: string;
  /** As the user wrote it (container paths are relative to "/"). */
  readonly path: string;
}

export interface CpOptions {
  /** `-L`: follow a symlink named by the source path. */
  readonly followLink?: boolean;
  /** `-a`: keep the source's uid and gid. */
  readonly archive?: boolean;
}

/** `CONTAINER:PATH` or a local path, as Docker splits them (a local path with ':' needs `./`). */
export function parseCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith("/") || arg.startsWith(".")) return { path: arg };
  const i = arg.indexOf(":");
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) || "/" };
}

const endsWithDot = (p: string) => p === "." || p.endsWith("/.");
const endsWithSlash = (p: string) => p.endsWith("/");

/** The last name of a path as given, `/.` and trailing slashes dropped; "" for the root. */
function baseName(path: string): string {
  const trimmed = path.replace(/(\/\.)+$/, "").replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * lstat, except for the container's root itself: `/proc/<pid>/root` is a (magic) link that must be
 * followed. Paths below it come from resolveInRoot, whose folders are real folders.
 */
function lstatOrUndefined(path: string, root?: string): Deno.FileInfo | undefined {
  try {
    return root !== undefined && path === root.replace(/\/+$/, "")
      ? Deno.statSync(path)
      : Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return undefined;
    throw err;
  }
}

const where = (side: CpSide) => (side.root === undefined ? side.path : `container path ${side.path}`);

/** The host path of a source, its final symlink followed when asked (or named with a trailing slash). */
function sourcePath(side: CpSide, followLink: boolean): string {
  const follow = followLink || endsWithSlash(side.path) || endsWithDot(side.path);
  if (side.root !== undefined) return resolveInRoot(side.root, side.path, { followLast: follow });
  return follow ? Deno.realPathSync(side.path) : side.path;
}

/** The host path of a destination: a symlink there is followed (inside the container's root). */
function destinationPath(side: CpSide): string {
  if (side.root !== undefined) return resolveInRoot(side.root, side.path, { followLast: true });
  try {
    return Deno.realPathSync(side.path);
  } catch {
    return side.path;
  }
}

/** Copies between a container and the host with Docker's file-or-folder rules. */
export async function copyPath(src: CpSide, dst: CpSide, options: CpOptions = {}): Promise<void> {
  if ((src.root === undefined) === (dst.root === undefined)) {
    throw invalidArgument(
      "Copying between containers or within the host is not supported: one side must be CONTAINER:PATH",
    );
  }
  const from = sourcePath(src, !!options.followLink);
  const info = lstatOrUndefined(from, src.root);
  if (!info) {
    throw notFound(`Could not find the file ${src.path} in ${src.root ? "the container" : "the host"}`);
  }
  if ((endsWithSlash(src.path) || endsWithDot(src.path)) && !info.isDirectory) {
    throw invalidArgument(`Cannot copy ${where(src)}: not a directory`);
  }
  const to = destinationPath(dst);
  const there = lstatOrUndefined(to, dst.root);
  const owner: Owner | undefined = options.archive
    ? undefined
    : dst.root !== undefined
    ? { uid: 0, gid: 0 }
    : { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };

  if (!info.isDirectory) {
    if (!there) {
      if (endsWithSlash(dst.path)) throw notFound(`Destination directory ${where(dst)} does not exist`);
      checkParent(to, dst);
      await copyTree(from, to, { owner, followTop: from === src.root?.replace(/\/+$/, "") });
    } else if (there.isDirectory) {
      await copyTree(from, `${to}/${baseName(src.path)}`, {
        owner,
        followTop: from === src.root?.replace(/\/+$/, ""),
      });
    } else {
      await copyTree(from, to, { owner, followTop: from === src.root?.replace(/\/+$/, "") });
    }
    return;
  }
  if (!there) {
    checkParent(to, dst);
    await copyTree(from, to, { owner, followTop: from === src.root?.replace(/\/+$/, "") });
  } else if (!there.isDirectory) {
    throw invalidArgument(`Cannot copy a directory to a file: ${where(dst)} is not a directory`);
  } else if (endsWithDot(src.path) || baseName(src.path) === "") {
    // `SRC/.`, or the root itself (which has no name to copy under): the folder's content.
    await copyChildren(from, to, { owner });
  } else {
    await copyTree(from, `${to}/${baseName(src.path)}`, {
      owner,
      followTop: from === src.root?.replace(/\/+$/, ""),
    });
  }
}

function checkParent(hostPath: string, side: CpSide): void {
  const parent = hostPath.slice(0, hostPath.lastIndexOf("/")) || "/";
  if (!lstatOrUndefined(parent, side.root)?.isDirectory) {
    throw notFound(`Cannot copy to ${where(side)}: its parent directory does not exist`);
  }
}

// --- tar streams (`-` as source or destination) ---

type Header = Partial<tar.Header> & { name: string };

function packEntry(pack: tar.Pack, header: Header, body?: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header as tar.Header, body ?? "", (err) => (err ? reject(err) : resolve()));
  });
}

async function packFile(pack: tar.Pack, header: Header, path: string, info: Deno.FileInfo): Promise<void> {
  const file = await Deno.open(path, { read: true });
  const opened = await file.stat();
  if (opened.ino !== info.ino || opened.dev !== info.dev) {
    file.close();
    throw invalidArgument(`Cannot copy ${path}: it changed while being copied`);
  }
  let done!: Promise<void>;
  const stream = await new Promise<NodeJS.WritableStream>((resolve) => {
    done = new Promise((ok, fail) => {
      resolve(pack.entry({ ...header, size: info.size } as tar.Header, (err) => (err ? fail(err) : ok())));
    });
  });
  let written = 0;
  for await (const chunk of file.readable) {
    // A file that grew after its header was written: the archive holds the size the header says.
    const part = chunk.subarray(0, Math.max(0, info.size - written));
    written += part.length;
    if (part.length && !stream.write(part)) await new Promise((r) => stream.once("drain", r));
  }
  if (written < info.size) stream.write(new Uint8Array(info.size - written));
  stream.end();
  await done;
}

async function packTree(pack: tar.Pack, path: string, name: string, follow = false): Promise<void> {
  const info = follow ? Deno.statSync(path) : Deno.lstatSync(path);
  const header: Header = {
    name,
    mode: (info.mode ?? 0) & 0o7777,
    uid: info.uid ?? 0,
    gid: info.gid ?? 0,
    mtime: info.mtime ?? new Date(),
  };
  if (info.isDirectory) {
    if (name !== "") await packEntry(pack, { ...header, name: `${name}/`, type: "directory" });
    const names = [...Deno.readDirSync(path)].map((e) => e.name).sort();
    for (const child of names) await packTree(pack, `${path}/${child}`, name ? `${name}/${child}` : child);
  } else if (info.isSymlink) {
    await packEntry(pack, { ...header, type: "symlink", linkname: Deno.readLinkSync(path) });
  } else if (info.isFile) {
    await packFile(pack, { ...header, type: "file" }, path, info);
  }
}

/**
 * `docker cp CONTAINER:SRC -`: a tar stream of the container path, under its base name (only its content
 * for `SRC/.`), with the container's owners in the headers.
 */
export async function tarFromContainer(
  root: string,
  path: string,
  sink: WritableStream<Uint8Array>,
  options: Pick<CpOptions, "followLink"> = {},
): Promise<void> {
  const from = sourcePath({ root, path }, !!options.followLink);
  if (!lstatOrUndefined(from, root)) throw notFound(`Could not find the file ${path} in the container`);
  await writeTar(sink, async (pack) => {
    await packTree(pack, from, endsWithDot(path) ? "" : baseName(path), from === root.replace(/\/+$/, ""));
  });
}

/** The components of a tar entry's name, or undefined when it would climb out (`..`). */
function entryParts(name: string): string[] | undefined {
  const parts = name.split("/").filter((c) => c !== "" && c !== ".");
  return parts.includes("..") ? undefined : parts;
}

/**
 * `docker cp - CONTAINER:DIR`: extracts a tar stream into a folder of the container. Every entry's folder
 * is resolved inside the root (a symlink an earlier entry made is followed there, never to the host), and
 * the entry itself replaces what was there unless both are folders.
 */
export async function untarIntoContainer(
  source: ReadableStream<Uint8Array>,
  root: string,
  dir: string,
  options: Pick<CpOptions, "archive"> & { onSkip?: (name: string, why: string) => void } = {},
): Promise<void> {
  const base = resolveInRoot(root, dir, { followLast: true });
  if (!lstatOrUndefined(base, root)?.isDirectory) {
    throw invalidArgument(`Cannot extract into container path ${dir}: not a directory`);
  }
  const sys = fsSyscalls();
  const extract = (await import("tar-stream")).default.extract();
  const feed = Readable.fromWeb(source as unknown as NodeWebReadableStream<Uint8Array>);
  feed.on("error", (err) => extract.destroy(err));
  feed.pipe(extract);
  const dirTimes: [string, number][] = [];
  for await (const entry of extract) {
    const h = entry.header;
    const parts = entryParts(h.name);
    if (!parts || parts.length === 0) {
      if (!parts) options.onSkip?.(h.name, "it climbs out of the destination");
      entry.resume();
      continue;
    }
    const containerPath = `${dir.replace(/\/+$/, "")}/${parts.join("/")}`;
    const parent = resolveInRoot(root, parts.length > 1 ? containerPath.replace(/\/[^/]*$/, "") : dir, {
      followLast: true,
    });
    const target = `${parent}/${parts[parts.length - 1]}`;
    if (!lstatOrUndefined(parent, root)?.isDirectory) {
      Deno.mkdirSync(parent, { recursive: true, mode: 0o755 });
    }
    const there = lstatOrUndefined(target);
    if (h.type === "directory") {
      if (there && !there.isDirectory) Deno.removeSync(target);
      if (!there?.isDirectory) Deno.mkdirSync(target, { mode: 0o700 });
    } else {
      if (there?.isDirectory) {
        throw invalidArgument(`Cannot overwrite directory ${containerPath} with non-directory`);
      }
      if (there) Deno.removeSync(target);
    }
    switch (h.type) {
      case "directory":
        break;
      case "file":
      case "contiguous-file": {
        const file = await Deno.open(target, { write: true, createNew: true, mode: 0o600 });
        const writer = file.writable.getWriter();
        for await (const chunk of entry as AsyncIterable<Uint8Array>) await writer.write(chunk);
        await writer.close();
        break;
      }
      case "symlink":
        Deno.symlinkSync(h.linkname ?? "", target);
        break;
      case "link": {
        const linkParts = entryParts(h.linkname ?? "");
        if (!linkParts?.length) {
          options.onSkip?.(h.name, "its link target climbs out of the destination");
          entry.resume();
          continue;
        }
        Deno.linkSync(resolveInRoot(root, `${dir}/${linkParts.join("/")}`), target);
        entry.resume();
        continue;
      }
      default:
        options.onSkip?.(h.name, `a ${h.type} entry is not copied`);
        entry.resume();
        continue;
    }
    entry.resume();
    const uid = options.archive ? h.uid ?? 0 : 0;
    const gid = options.archive ? h.gid ?? 0 : 0;
    sys.lchown(target, uid, gid);
    if (h.type !== "symlink") Deno.chmodSync(target, (h.mode ?? 0o644) & 0o7777);
    const mtime = h.mtime?.getTime() ?? Date.now();
    if (h.type === "directory") dirTimes.push([target, mtime]);
    else sys.lutimes(target, mtime, mtime);
  }
  // Folders' times last: the entries written into them changed them.
  for (const [path, mtime] of dirTimes.reverse()) sys.lutimes(path, mtime, mtime);
}
