/**
 * Container logs in the CRI format, as containerd's CRI writes them (pkg/cri/io/logger.go) and
 * `crictl logs` / the kubelet read them: one line per line of output,
 * `<RFC3339Nano time> <stdout|stderr> <F|P> <text>\n`, where P marks a partial line: a line longer than
 * `max_container_log_line_size`, cut into pieces, or output that ended without a newline.
 */
import { formatRfc3339Nano, now } from "../../base/clock.ts";

export type LogStream = "stdout" | "stderr";

const NEWLINE = 0x0a;
const CR = 0x0d;
const enc = new TextEncoder();

/** One container's log file; stdout and stderr copy into it line by line, never interleaving a line. */
export class CriLogFile {
  #path: string;
  #file: Deno.FsFile;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }

  static async open(path: string): Promise<CriLogFile> {
    const dir = path.slice(0, path.lastIndexOf("/"));
    if (dir) await Deno.mkdir(dir, { recursive: true });
    return new CriLogFile(path, await Deno.open(path, { create: true, append: true, mode: 0o640 }));
  }

  /** Appends one record; records are written in the order they were handed in. */
  write(stream: LogStream, partial: boolean, line: Uint8Array): Promise<void> {
    const head = enc.encode(`${formatRfc3339Nano(now())} ${stream} ${partial ? "P" : "F"} `);
    const rec = new Uint8Array(head.length + line.length + 1);
    rec.set(head);
    rec.set(line, head.length);
    rec[rec.length - 1] = NEWLINE;
    const file = this.#file;
    this.#writing = this.#writing.then(async () => {
      for (let off = 0; off < rec.length;) off += await file.write(rec.subarray(off));
    }).catch(() => {});
    return this.#writing;
  }

  /** ReopenContainerLog: the kubelet rotated the file away; later lines go to a new one at the same path. */
  async reopen(): Promise<void> {
    await this.#writing;
    const next = await Deno.open(this.#path, { create: true, append: true, mode: 0o640 });
    const old = this.#file;
    this.#file = next;
    old.close();
  }

  async close(): Promise<void> {
    await this.#writing;
    try {
      this.#file.close();
    } catch { /* closed */ }
  }
}

/**
 * Copies `source` into `log` as CRI records until it ends: full lines as F, a line over `maxLen` bytes
 * in P pieces of maxLen, and what is left at the end without a newline as P.
 */
export async function redirectLogs(
  source: ReadableStream<Uint8Array>,
  log: CriLogFile,
  stream: LogStream,
  maxLen: number,
): Promise<void> {
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  const take = (): Uint8Array => {
    const out = new Uint8Array(pendingLen);
    let at = 0;
    for (const p of pending) {
      out.set(p, at);
      at += p.length;
    }
    pending = [];
    pendingLen = 0;
    return out;
  };
  const emit = (partial: boolean) => {
    let line = take();
    if (!partial && line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    return log.write(stream, partial, line);
  };
  for await (const chunk of source) {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl < 0 ? chunk.length : nl;
      let piece = chunk.subarray(start, end);
      // Cut over-long lines into maxLen pieces as they come.
      while (maxLen > 0 && pendingLen + piece.length > maxLen) {
        const room = maxLen - pendingLen;
        pending.push(piece.subarray(0, room));
        pendingLen += room;
        await emit(true);
        piece = piece.subarray(room);
      }
      if (piece.length > 0) {
        pending.push(piece.slice());
        pendingLen += piece.length;
      }
      if (nl < 0) break;
      await emit(false);
      start = nl + 1;
    }
  }
  if (pendingLen > 0) await emit(true);
}
