/**
 * The resize stream of remotecommand v3 and v4: a sequence of JSON objects {"Width":w,"Height":h}, each
 * as Go's json.Encoder writes it (followed by a newline), read as the kubelet's json.Decoder does
 * (field names in any case). Invalid input ends the sequence, as it ends the kubelet's loop.
 */

import type { TerminalSize } from "./types.ts";

/** The most a single JSON value may take before the input counts as invalid. */
const maxValueBytes = 4096;

/**
 * Terminal sizes read from a resize stream. Only the latest unread size is kept: a consumer that falls
 * behind skips sizes it would overwrite anyway. Sizes with a zero side are dropped (containerd's
 * handleResizing skips them too).
 */
export class TerminalSizes implements AsyncIterable<TerminalSize> {
  #latest: TerminalSize | undefined;
  #ended = false;
  #waiter: (() => void) | undefined;

  constructor(input: ReadableStream<Uint8Array>) {
    void this.#read(input);
  }

  /** Terminal sizes that never come: a session without a resize stream. */
  static none(): AsyncIterable<TerminalSize> {
    return { async *[Symbol.asyncIterator]() {} };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TerminalSize> {
    for (;;) {
      const size = this.#latest;
      if (size) {
        this.#latest = undefined;
        yield size;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
  }

  async #read(input: ReadableStream<Uint8Array>): Promise<void> {
    const splitter = new JsonValueSplitter(maxValueBytes);
    const reader = input.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const text of splitter.push(value)) {
          const size = parseTerminalSize(text);
          if (size === "invalid") throw new Error(`Invalid terminal size ${text}`);
          if (size) this.#publish(size);
        }
        if (splitter.invalid) throw new Error(splitter.invalid);
      }
    } catch {
      // Invalid input, or the stream failed: no more sizes; whatever else comes is dropped.
      await reader.cancel().catch(() => {});
    } finally {
      reader.releaseLock();
      this.#ended = true;
      this.#wake();
    }
  }

  #publish(size: TerminalSize): void {
    this.#latest = size;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

/** One decoded value: a size, nothing to report (a zero side), or input Go's decoder would reject. */
export function parseTerminalSize(text: string): TerminalSize | undefined | "invalid" {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "invalid";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "invalid";
  let width = 0;
  let height = 0;
  for (const [key, v] of Object.entries(value)) {
    const field = key.toLowerCase();
    if (field !== "width" && field !== "height") continue;
    // Go decodes into uint16: anything else is a decoding error.
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) return "invalid";
    if (field === "width") width = v;
    else height = v;
  }
  if (width === 0 || height === 0) return undefined;
  return { width, height };
}

/** Cuts a byte stream into top-level JSON objects, as a streaming JSON decoder reads them. */
export class JsonValueSplitter {
  readonly #max: number;
  readonly #decoder = new TextDecoder();
  #text = "";
  #depth = 0;
  #inString = false;
  #escaped = false;
  #scanned = 0;
  #invalid: string | undefined;

  constructor(maxValueBytes: number) {
    this.#max = maxValueBytes;
  }

  /** Why the input stopped being a sequence of objects; nothing is read after that. */
  get invalid(): string | undefined {
    return this.#invalid;
  }

  /** The objects `chunk` completed, up to anything that is not an object or whitespace between. */
  push(chunk: Uint8Array): string[] {
    if (this.#invalid) return [];
    this.#text += this.#decoder.decode(chunk, { stream: true });
    const values: string[] = [];
    let start = 0;
    for (let i = this.#scanned; i < this.#text.length; i++) {
      const ch = this.#text[i]!;
      if (this.#depth === 0) {
        if (ch === " " || ch === "\n" || ch === "\r" || ch === "\t") {
          start = i + 1;
          continue;
        }
        if (ch !== "{") {
          this.#invalid = `Unexpected ${JSON.stringify(ch)} between terminal sizes`;
          return values;
        }
        start = i;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (ch === "\\") this.#escaped = true;
        else if (ch === '"') this.#inString = false;
        continue;
      }
      if (ch === '"') this.#inString = true;
      else if (ch === "{" || ch === "[") this.#depth++;
      else if (ch === "}" || ch === "]") {
        this.#depth--;
        if (this.#depth === 0) {
          values.push(this.#text.slice(start, i + 1));
          start = i + 1;
        }
      }
    }
    this.#text = this.#text.slice(start);
    this.#scanned = this.#text.length;
    if (this.#text.length > this.#max) this.#invalid = `A terminal size longer than ${this.#max} bytes`;
    return values;
  }
}
