/**
 * Docker's `json-file` log driver: its file format, size rotation and reading, so that a file Berth
 * writes is one `docker logs` could read and the other way round (moby daemon/logger/jsonfilelog and
 * loggerutils/logfile.go).
 *
 * One JSON object a line, fields in docker's order, the time RFC 3339 in UTC with up to nine fraction
 * digits (Go's RFC3339Nano, trailing zeros trimmed):
 *
 *   {"log":"hello\n","stream":"stdout","time":"2026-12-07T04:05:11.123456789Z"}
 *
 * Output is cut at newlines; a line longer than 16 KiB goes out in pieces without a newline (docker's
 * copier buffer), as does what is left without one when the stream ends. The file is rotated once it
 * holds `max-size` bytes or more, before the next line: `<path>.1` is the newest rotated file and at most
 * `max-file` files exist, the live one included; with one file the live file is truncated.
 */
import { formatRfc3339Nano, fromMillis, now, parseRfc3339, type UnixNanos } from "../../base/clock.ts";
import { invalidArgument } from "../../base/errors.ts";

export type LogStream = "stdout" | "stderr";

/** One line of a json-file log. */
export interface JsonLogEntry {
  /** The output, with its newline unless it was a piece of a longer line or the stream's last words. */
  readonly log: string;
  readonly stream: LogStream;
  /** RFC 3339 in UTC, to the nanosecond. */
  readonly time: string;
}

/** The options of docker's json-file driver that Berth honours. */
export interface JsonFileConfig {
  /** The log file's absolute path. */
  readonly path: string;
  /** Rotate once the file holds this many bytes; 0 never rotates. */
  readonly maxSize: number;
  /** How many files to keep, the live one included (at least 1). */
  readonly maxFile: number;
}

/** The value of the log URI key (and foreign logging binary argument) that selects Berth's json-file. */
export const INTERNAL_LOGGING_KEY = "_BERTH_INTERNAL_LOGGING";
export const JSON_FILE_DRIVER = "json-file";

/** Docker's copier buffer: a longer line is written in pieces of this many bytes. */
export const MAX_LINE_BYTES = 16 * 1024;
/** What may wait in memory for a slow disk before lines are dropped (docker's default max-buffer-size). */
const DEFAULT_MAX_BUFFER = 1024 * 1024;
/** Lines are written to the file in batches of about this many bytes. */
const BATCH_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const enc = new TextEncoder();

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  k: 1 << 10,
  m: 1 << 20,
  g: 1 << 30,
  t: 2 ** 40,
  p: 2 ** 50,
};

/**
 * Parses a size as docker's `max-size` (go-units RAMInBytes): a number with an optional binary unit,
 * `1024`, `10k`, `10m`, `1.5g`, `10MB`, `10MiB`.
 */
export function parseLogSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw invalidArgument(`Log size "${text}" is not a size (such as 1024, 10k, 10m or 1g)`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

/**
 * The json-file config in a logging binary's arguments (the log URI's query as key, value pairs:
 * `_BERTH_INTERNAL_LOGGING json-file path /x max-size 10m max-file 3`); undefined when they do not name
 * `_BERTH_INTERNAL_LOGGING`, an error when they name another driver or a bad option.
 */
export function jsonFileConfig(args: readonly string[]): JsonFileConfig | undefined {
  const opts = new Map<string, string>();
  for (let i = 0; i + 1 < args.length; i += 2) {
    if (!opts.has(args[i]!)) opts.set(args[i]!, args[i + 1]!);
  }
  const driver = opts.get(INTERNAL_LOGGING_KEY);
  if (driver === undefined) return undefined;
  if (driver !== JSON_FILE_DRIVER) {
    throw invalidArgument(`Log driver "${driver}" is not one Berth writes (it writes ${JSON_FILE_DRIVER})`);
  }
  const path = opts.get("path") ?? "";
  if (!path.startsWith("/")) throw invalidArgument(`json-file log path "${path}" is not absolute`);
  const maxSize = opts.get("max-size") ? parseLogSize(opts.get("max-size")!) : 0;
  const fileText = opts.get("max-file") || "1";
  const maxFile = Number(fileText);
  if (!Number.isInteger(maxFile) || maxFile < 1) {
    throw invalidArgument(`json-file max-file "${fileText}" is not a whole number of at least 1`);
  }
  return { path, maxSize, maxFile };
}

/** Escapes as Go's encoding/json does on top of JSON.stringify, so lines are byte-for-byte docker's. */
function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** One entry as a line of the file, newline included. */
export function formatJsonLogLine(entry: JsonLogEntry): string {
  return `{"log":${goJsonString(entry.log)},"stream":"${entry.stream}","time":"${entry.time}"}\n`;
}

/** Where a piece of at most `max` bytes of `bytes` may end without cutting a UTF-8 character. */
function utf8Cut(bytes: Uint8Array, max: number): number {
  let cut = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the character the cut falls in.
  while (cut > 0 && cut > max - 4 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return cut > 0 ? cut : max;
}

export interface JsonFileWriterOptions {
  /** Bytes of lines that may wait for the disk; beyond them new lines are dropped and counted. */
  readonly maxBuffer?: number;
  /** The time stamped on lines (a test's scripted clock). */
  readonly clock?: () => UnixNanos;
}

/**
 * Writes one container's json-file log: stdout and stderr are cut into lines separately and never
 * interleave within a line. write() never waits: lines queue in memory (up to maxBuffer) while one
 * asynchronous write at a time takes them to the file, so that a slow disk cannot stall the reader of
 * a container's output, nor a shim's event loop.
 */
export class JsonFileWriter {
  readonly #config: JsonFileConfig;
  readonly #maxBuffer: number;
  readonly #clock: () => UnixNanos;
  readonly #pending: Record<LogStream, Uint8Array[]> = { stdout: [], stderr: [] };
  readonly #dec = new TextDecoder();
  #file: Deno.FsFile;
  #size: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #pump: Promise<void> | undefined;
  #dropped = 0;
  #closed = false;

  private constructor(
    config: JsonFileConfig,
    file: Deno.FsFile,
    size: number,
    options: JsonFileWriterOptions,
  ) {
    this.#config = config;
    this.#file = file;
    this.#size = size;
    this.#maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER;
    this.#clock = options.clock ?? now;
  }

  /** Opens (or creates, with its folders) the log file to append to. */
  static async open(config: JsonFileConfig, options: JsonFileWriterOptions = {}): Promise<JsonFileWriter> {
    const dir = config.path.slice(0, config.path.lastIndexOf("/"));
    if (dir) await Deno.mkdir(dir, { recursive: true });
    const file = await Deno.open(config.path, { create: true, append: true, read: true, mode: 0o640 });
    try {
      const { size } = await file.stat();
      const writer = new JsonFileWriter(config, file, size, options);
      // A writer that died mid-line (a shim killed) left a torn line: end it, so the next one parses.
      if (size > 0) {
        const last = new Uint8Array(1);
        await file.seek(size - 1, Deno.SeekMode.Start);
        if ((await file.read(last)) === 1 && last[0] !== NEWLINE) writer.#enqueue(new Uint8Array([NEWLINE]));
      }
      return writer;
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Lines dropped because the disk did not keep up (or failed). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Takes a chunk of a stream's output: its complete lines are queued for the file at once. */
  write(stream: LogStream, chunk: Uint8Array): void {
    if (this.#closed || chunk.length === 0) return;
    const pending = this.#pending[stream];
    const time = formatRfc3339Nano(this.#clock());
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl < 0 ? chunk.length : nl + 1;
      pending.push(chunk.slice(start, end));
      start = end;
      if (nl >= 0) this.#emit(stream, time, false);
      else if (pendingBytes(pending) >= MAX_LINE_BYTES) this.#emit(stream, time, true);
    }
  }

  /** The stream ended: what it left without a newline goes out as it is. */
  endStream(stream: LogStream): void {
    if (pendingBytes(this.#pending[stream]) > 0) this.#emit(stream, formatRfc3339Nano(this.#clock()), false);
  }

  /** Resolves once everything queued so far is in the file (or failed to get there). */
  async flushed(): Promise<void> {
    while (this.#pump) await this.#pump;
  }

  /** Ends both streams, writes what is queued and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.endStream("stdout");
    this.endStream("stderr");
    this.#closed = true;
    await this.flushed();
    try {
      this.#file.close();
    } catch { /* closed */ }
  }

  /** Queues the stream's pending bytes as lines; `cut` keeps back a UTF-8 character cut at the limit. */
  #emit(stream: LogStream, time: string, cut: boolean): void {
    const parts = this.#pending[stream];
    const bytes = concat(parts.splice(0));
    let off = 0;
    while (off < bytes.length) {
      const rest = bytes.subarray(off);
      if (cut && rest.length < MAX_LINE_BYTES) {
        parts.push(rest.slice());
        break;
      }
      const n = rest.length > MAX_LINE_BYTES ? utf8Cut(rest, MAX_LINE_BYTES) : rest.length;
      const log = this.#dec.decode(rest.subarray(0, n));
      this.#enqueue(enc.encode(formatJsonLogLine({ log, stream, time })));
      off += n;
    }
  }

  #enqueue(line: Uint8Array): void {
    if (this.#queued + line.length > this.#maxBuffer) {
      this.#dropped++;
      return;
    }
    this.#queue.push(line);
    this.#queued += line.length;
    this.#kick();
  }

  /** Starts the one write loop unless it runs; a line queued while it was finishing starts another. */
  #kick(): void {
    if (this.#pump) return;
    this.#pump = this.#drain().catch(() => {
      // A failed write (a full disk): what waits is dropped and counted; later lines try again.
      this.#dropped += this.#queue.length;
      this.#queue = [];
      this.#queued = 0;
    }).finally(() => {
      this.#pump = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    const { maxSize } = this.#config;
    while (this.#queue.length > 0) {
      // As docker: rotate before a line once the file holds max-size bytes, so a file may exceed it by a line.
      if (maxSize > 0 && this.#size >= maxSize) await this.#rotate();
      const batch: Uint8Array[] = [];
      let bytes = 0;
      while (
        this.#queue.length > 0 && bytes < BATCH_BYTES && (maxSize <= 0 || this.#size + bytes < maxSize)
      ) {
        const line = this.#queue.shift()!;
        batch.push(line);
        bytes += line.length;
      }
      this.#queued -= bytes;
      const data = concat(batch);
      for (let off = 0; off < data.length;) off += await this.#file.write(data.subarray(off));
      this.#size += bytes;
    }
  }

  /** `<path>.{n-1}` → `.{n}` … `<path>` → `.1`, then a new empty live file (the old one truncated when maxFile is 1). */
  async #rotate(): Promise<void> {
    const { path, maxFile } = this.#config;
    try {
      this.#file.close();
    } catch { /* closed by a rotation that failed after it: this one tries again */ }
    for (let i = maxFile - 1; i >= 1; i--) {
      const from = i === 1 ? path : `${path}.${i - 1}`;
      await Deno.rename(from, `${path}.${i}`).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
    this.#file = await Deno.open(path, { create: true, write: true, truncate: true, mode: 0o640 });
    this.#size = 0;
  }
}

function pendingBytes(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(pendingBytes(parts));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface ReadJsonLogOptions {
  /** Only the last this many entries (of those since/until let through) before following. */
  readonly tail?: number;
  /** Entries at or after this time. */
  readonly since?: Date;
  /** Entries at or before this time; a follow ends at the first entry after it. */
  readonly until?: Date;
  /** Keep reading what is appended, across rotations, until `signal` aborts. */
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
  /** How often a follow looks for more (ms). */
  readonly pollMs?: number;
}

/** Splits a file's bytes into entries; what follows the last newline waits for more. */
class LineReader {
  readonly #dec = new TextDecoder();
  #rest = new Uint8Array(0);

  /** The entries completed by `chunk`; unparseable lines (a torn line that was later ended) are skipped. */
  push(chunk: Uint8Array): JsonLogEntry[] {
    const data = this.#rest.length ? concat([this.#rest, chunk]) : chunk;
    const out: JsonLogEntry[] = [];
    let start = 0;
    for (let nl; (nl = data.indexOf(NEWLINE, start)) >= 0; start = nl + 1) {
      const entry = parseLine(this.#dec.decode(data.subarray(start, nl)));
      if (entry) out.push(entry);
    }
    this.#rest = data.slice(start);
    return out;
  }

  /** Forgets a partial line (the file it came from was truncated). */
  reset(): void {
    this.#rest = new Uint8Array(0);
  }
}

function parseLine(text: string): JsonLogEntry | undefined {
  try {
    const v = JSON.parse(text);
    if (typeof v?.log !== "string" || typeof v.time !== "string") return undefined;
    return { log: v.log, stream: v.stream === "stderr" ? "stderr" : "stdout", time: v.time };
  } catch {
    return undefined;
  }
}

/** The files of a log, oldest first: `<path>.N` … `<path>.1`, `<path>`. */
async function logFiles(path: string): Promise<string[]> {
  const files = [path];
  for (let i = 1;; i++) {
    const rotated = `${path}.${i}`;
    if (!(await Deno.stat(rotated).then(() => true, () => false))) break;
    files.unshift(rotated);
  }
  return files;
}

/** Every complete entry of one file (read from `file`'s current offset to its end). */
async function* entriesOf(file: Deno.FsFile, lines = new LineReader()): AsyncGenerator<JsonLogEntry> {
  const buf = new Uint8Array(64 * 1024);
  for (let n; (n = await file.read(buf)) !== null;) yield* lines.push(buf.subarray(0, n));
}

async function openOrUndefined(path: string): Promise<Deno.FsFile | undefined> {
  try {
    return await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Reads a json-file log as `docker logs` does: the rotated files and the live one, oldest entry first;
 * with `tail`, only the last entries; with `follow`, then what is appended, reopening the live file when
 * a rotation replaces or truncates it, until `signal` aborts or an entry passes `until`. A torn last line
 * (a writer killed mid-write) is left out.
 */
export async function* readJsonLog(
  path: string,
  options: ReadJsonLogOptions = {},
): AsyncGenerator<JsonLogEntry> {
  const since = options.since ? fromMillis(options.since.getTime()) : undefined;
  const until = options.until ? fromMillis(options.until.getTime()) : undefined;
  /** 1: yield, 0: skip, -1: past until, stop. */
  const judge = (e: JsonLogEntry): number => {
    if (since === undefined && until === undefined) return 1;
    let t: UnixNanos;
    try {
      t = parseRfc3339(e.time);
    } catch {
      return 0;
    }
    if (until !== undefined && t > until) return -1;
    return since !== undefined && t < since ? 0 : 1;
  };
  const files = await logFiles(path);
  // The live file stays open for a follow: lines appended after the first read are not missed.
  const live = await openOrUndefined(path);
  const liveLines = new LineReader();
  try {
    if (options.tail !== undefined) {
      let need = Math.max(0, Math.floor(options.tail));
      const chunks: JsonLogEntry[][] = [];
      // Newest file first, each read from its end: a tail of a large log reads little of it.
      for (let i = files.length - 1; i >= 0; i--) {
        const isLive = i === files.length - 1;
        if (!isLive && need === 0) break;
        const file = isLive ? live : await openOrUndefined(files[i]!);
        if (!file) continue;
        try {
          const { entries, resume } = await tailOf(file, (await file.stat()).size, need, judge);
          // A follow goes on from the end of the last whole line: a torn one may still be completed.
          if (isLive) await file.seek(resume, Deno.SeekMode.Start);
          chunks.unshift(entries);
          need -= entries.length;
        } finally {
          if (!isLive) file.close();
        }
      }
      for (const e of chunks.flat()) yield e;
    } else {
      for (let i = 0; i < files.length; i++) {
        const isLive = i === files.length - 1;
        const file = isLive ? live : await openOrUndefined(files[i]!);
        if (!file) continue;
        try {
          for await (const e of entriesOf(file, isLive ? liveLines : undefined)) {
            const verdict = judge(e);
            if (verdict < 0) return;
            if (verdict > 0) yield e;
          }
        } finally {
          if (!isLive) file.close();
        }
      }
    }
    if (options.follow) yield* follow(path, live, liveLines, judge, options);
  } finally {
    try {
      live?.close();
    } catch { /* closed by follow */ }
  }
}

const TAIL_BLOCK = 64 * 1024;

/**
 * The last `need` entries of the first `size` bytes of `file` that `judge` lets through, oldest first,
 * read block by block from the end; and `resume`, the offset just after its last whole line.
 */
async function tailOf(
  file: Deno.FsFile,
  size: number,
  need: number,
  judge: (e: JsonLogEntry) => number,
): Promise<{ entries: JsonLogEntry[]; resume: number }> {
  const blocks: Uint8Array[] = [];
  let start = size;
  let newlines = 0;
  /** Newlines to read back to: one more than the lines wanted, as the first may be cut by the block. */
  let want = need + 1;
  for (;;) {
    while (start > 0 && newlines < want) {
      const from = Math.max(0, start - TAIL_BLOCK);
      const block = await readAt(file, from, start - from);
      blocks.unshift(block);
      start = from;
      for (const b of block) if (b === NEWLINE) newlines++;
    }
    const data = concat(blocks);
    const resume = start + data.lastIndexOf(NEWLINE) + 1;
    if (need === 0) return { entries: [], resume: Math.max(resume, start) };
    // Before the first newline is a piece of a line whose start was not read (unless at the file's start).
    const body = start > 0 ? data.subarray(data.indexOf(NEWLINE) + 1) : data;
    const entries = new LineReader().push(body).filter((e) => judge(e) > 0);
    if (entries.length >= need || start === 0) return { entries: entries.slice(-need), resume };
    want = newlines + (need - entries.length) + 1;
  }
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}

async function* follow(
  path: string,
  first: Deno.FsFile | undefined,
  lines: LineReader,
  judge: (e: JsonLogEntry) => number,
  options: ReadJsonLogOptions,
): AsyncGenerator<JsonLogEntry> {
  const { signal } = options;
  const pollMs = options.pollMs ?? 100;
  let file = first;
  let offset = file ? (await file.seek(0, Deno.SeekMode.Current)) : 0;
  let ino = file ? (await file.stat()).ino : undefined;
  try {
    while (!signal?.aborted) {
      if (file) {
        for await (const e of entriesOf(file, lines)) {
          const verdict = judge(e);
          if (verdict < 0) return;
          if (verdict > 0) yield e;
        }
        offset = await file.seek(0, Deno.SeekMode.Current);
      }
      const now = await Deno.stat(path).catch(() => undefined);
      if (now && now.ino !== ino) {
        // Rotated: the old file was complete before the new one appeared (the writer closes it first);
        // read what is left of it, then start the new one from its beginning.
        if (file) {
          for await (const e of entriesOf(file, lines)) {
            const verdict = judge(e);
            if (verdict < 0) return;
            if (verdict > 0) yield e;
          }
          file.close();
        }
        file = await openOrUndefined(path);
        ino = file ? (await file.stat()).ino : undefined;
        lines.reset();
        offset = 0;
        continue;
      }
      if (file && now && now.size < offset) {
        // Truncated in place (max-file 1): start over.
        await file.seek(0, Deno.SeekMode.Start);
        lines.reset();
        offset = 0;
        continue;
      }
      await sleep(pollMs, signal);
    }
  } finally {
    try {
      file?.close();
    } catch { /* closed */ }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
