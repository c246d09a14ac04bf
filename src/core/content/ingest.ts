import { writeFileAtomic, writeFileAtomicSync } from "../../base/atomic_write.ts";
import { sha256HexSync } from "../../base/hash.ts";
import { joinPath } from "../../base/paths.ts";
import { formatRfc3339Nano, fromMillis, parseRfc3339, type UnixNanos } from "../../base/clock.ts";
import { notFound } from "../../base/errors.ts";
import type { Status } from "./types.ts";

/**
 * The on-disk layout of one ingest: `<root>/ingest/<sha256(namespace/ref)>/` holding `data` and small
 * files `namespace`, `ref`, `startedat`, `updatedat`, `total`, `expected` (as containerd's local store,
 * plus the namespace). Hashing the key keeps paths short and free of the ref's characters. Times are
 * RFC 3339 with nanoseconds, as Go's time.MarshalText writes them.
 */
export class IngestDir {
  readonly path: string;
  readonly data: string;

  constructor(ingestRoot: string, readonly namespace: string, readonly ref: string) {
    const key = sha256HexSync(`${namespace}/${ref}`);
    this.path = joinPath(ingestRoot, key);
    this.data = joinPath(this.path, "data");
  }

  /**
   * Creates the folder; false if it already existed (a resumable ingest). This and the metadata writes
   * below are synchronous: a few tiny files per ingest, ~20 µs each as a syscall but ~0.2 ms each as a
   * round trip through Deno's blocking pool (an ingest's opening took ~14 of them, paid by every blob a
   * client writes), and the first async writeTextFile loads Deno's web streams code (~4 ms).
   */
  create(): boolean {
    try {
      Deno.mkdirSync(this.path, { mode: 0o755 });
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    }
  }

  init(meta: { startedAt: UnixNanos; total: number; expected: string }): void {
    writeFileAtomicSync(joinPath(this.path, "namespace"), this.namespace);
    writeFileAtomicSync(joinPath(this.path, "ref"), this.ref);
    writeFileAtomicSync(joinPath(this.path, "startedat"), formatRfc3339Nano(meta.startedAt));
    writeFileAtomicSync(joinPath(this.path, "updatedat"), formatRfc3339Nano(meta.startedAt));
    this.declare(meta);
    Deno.openSync(this.data, { write: true, create: true }).close();
  }

  /** Records what a writer declared it will write: the total size (when > 0) and digest (when set). */
  declare(meta: { total: number; expected: string }): void {
    if (meta.total > 0) writeFileAtomicSync(joinPath(this.path, "total"), String(meta.total));
    if (meta.expected !== "") writeFileAtomicSync(joinPath(this.path, "expected"), meta.expected);
  }

  async touch(updatedAt: UnixNanos): Promise<void> {
    await writeFileAtomic(joinPath(this.path, "updatedat"), formatRfc3339Nano(updatedAt));
  }

  /** Reads the ingest's status; notFound when the folder or its data is missing. */
  async status(): Promise<Status> {
    return await readStatus(this.path);
  }

  /**
   * Removes the folder, again when a file appeared in it meanwhile (ENOTEMPTY), as Go's os.RemoveAll
   * does: a writer closing as its ingest is aborted still renames its `updatedat` into place (a client
   * that closes a writer does not wait for the server's close before it calls Abort).
   */
  async remove(): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        return await Deno.remove(this.path, { recursive: true });
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOTEMPTY" || attempt >= REMOVE_ATTEMPTS) throw err;
      }
    }
  }
}

/** How often remove() tries a folder that keeps getting new files. */
const REMOVE_ATTEMPTS = 10;

/** Reads the status of the ingest folder at `path`. */
export async function readStatus(path: string): Promise<Status & { namespace: string }> {
  let size: number;
  let mtime: Date | null;
  try {
    const st = await Deno.stat(joinPath(path, "data"));
    size = st.size;
    mtime = st.mtime;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw notFound(`Ingest at ${path} has no data`);
    throw err;
  }
  const ref = await readText(joinPath(path, "ref"));
  const namespace = await readText(joinPath(path, "namespace"));
  if (ref === undefined || namespace === undefined) throw notFound(`Ingest at ${path} has no ref`);
  const startedAt = readTime(await readText(joinPath(path, "startedat")));
  let updatedAt = readTime(await readText(joinPath(path, "updatedat")));
  // updatedat is written on close only; the data's mtime (whole milliseconds here) is fresher while a
  // writer that is not this process's is open, or after one that died.
  if (mtime !== null && fromMillis(mtime.getTime()) > updatedAt) updatedAt = fromMillis(mtime.getTime());
  const total = Number(await readText(joinPath(path, "total")) ?? 0);
  return {
    namespace,
    ref,
    offset: size,
    total: Number.isSafeInteger(total) ? total : 0,
    expected: await readText(joinPath(path, "expected")) ?? "",
    startedAt,
    updatedAt,
  };
}

/** The namespace and ref an ingest folder belongs to, or undefined when it has not been set up. */
export function readIdentitySync(path: string): { namespace: string; ref: string } | undefined {
  try {
    return {
      namespace: Deno.readTextFileSync(joinPath(path, "namespace")),
      ref: Deno.readTextFileSync(joinPath(path, "ref")),
    };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

// Folders written before times had nanoseconds hold Date.toISOString() text, which parses the same.
function readTime(text: string | undefined): UnixNanos {
  if (text === undefined) return 0n;
  try {
    return parseRfc3339(text);
  } catch {
    return 0n;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
