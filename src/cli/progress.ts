/**
 * Transfer progress as ctr shows it: on a terminal one line per descriptor, redrawn in place, with a bar
 * and byte counts, and the elapsed time; otherwise a plain line whenever a descriptor changes state.
 */

export interface ProgressItem {
  readonly ref: string;
  readonly status: string;
  readonly offset: number;
  readonly total: number;
  /** The offset an interrupted download resumed from (0: none). */
  readonly resumedFrom?: number;
  readonly error?: string;
}

export interface ProgressViewOptions {
  /** Redraw in place (a terminal) or print plain lines. Default: whether stdout is a terminal. */
  readonly tty?: boolean;
  readonly write?: (text: string) => void;
  readonly now?: () => number;
}

const BAR_WIDTH = 40;
const encoder = new TextEncoder();

export class ProgressView {
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #start: number;
  readonly #items = new Map<string, ProgressItem>();
  #drawn = 0;

  constructor(options: ProgressViewOptions = {}) {
    this.#tty = options.tty ?? Deno.stdout.isTerminal();
    this.#write = options.write ?? ((t) => Deno.stdout.writeSync(encoder.encode(t)));
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  update(items: readonly ProgressItem[]): void {
    for (const item of items) {
      const prev = this.#items.get(item.ref);
      this.#items.set(item.ref, item);
      if (
        !this.#tty && (prev?.status !== item.status || (item.resumedFrom ?? 0) !== (prev?.resumedFrom ?? 0))
      ) {
        this.#write(plainLine(item) + "\n");
      }
    }
    if (this.#tty) this.#redraw();
  }

  /** Final redraw; returns the elapsed seconds. */
  finish(): number {
    const elapsed = (this.#now() - this.#start) / 1000;
    if (this.#tty) this.#redraw();
    return elapsed;
  }

  #redraw(): void {
    const items = [...this.#items.values()];
    const width = Math.max(0, ...items.map((i) => i.ref.length + 1));
    const lines = items.map((i) => `${(i.ref + ":").padEnd(width)} ${ttyStatus(i)}`);
    const elapsed = (this.#now() - this.#start) / 1000;
    const bytes = items.reduce(
      (n, i) => n + (i.status === "exists" ? 0 : i.offset - (i.resumedFrom ?? 0)),
      0,
    );
    const rate = elapsed > 0 ? bytes / elapsed : 0;
    lines.push(
      `elapsed: ${elapsed.toFixed(1)} s`.padEnd(width + 1) +
        ` total: ${formatBytes(bytes)} (${formatBytes(rate)}/s)`,
    );
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    this.#write(up + lines.map((l) => `\x1b[2K${l}\n`).join(""));
    this.#drawn = lines.length;
  }
}

function ttyStatus(i: ProgressItem): string {
  const status = i.status.padEnd(12);
  if (i.status === "downloading" || i.status === "uploading") {
    return `${status} |${bar(i.offset, i.total)}| ${formatBytes(i.offset)}/${formatBytes(i.total)}`;
  }
  if (i.status === "done" || i.status === "exists" || i.status === "unpacking") {
    return `${status} |${bar(1, 1)}|`;
  }
  if (i.status === "error") return `${status} ${i.error ?? ""}`;
  return `${status} |${bar(0, 1)}|`;
}

function plainLine(i: ProgressItem): string {
  const head = `${i.ref}: ${i.status}`;
  if (i.status === "error") return `${head} ${i.error ?? ""}`.trimEnd();
  if (i.status === "downloading" && i.resumedFrom) {
    return `${head} (resuming at ${formatBytes(i.resumedFrom)} of ${formatBytes(i.total)})`;
  }
  if (i.total > 0 && i.status !== "resolving") return `${head} ${formatBytes(i.total)}`;
  return head;
}

function bar(done: number, total: number): string {
  const filled = total > 0 ? Math.min(BAR_WIDTH, Math.round((done / total) * BAR_WIDTH)) : 0;
  return "+".repeat(filled) + "-".repeat(BAR_WIDTH - filled);
}

/** Bytes the way ctr's progress.Bytes prints them (go-units' "%02.1f %s", 1024-based): `3.4 MiB`, `100.0 B`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
  let f = n;
  let i = 0;
  for (; f >= 1024 && i < units.length - 1; i++) f /= 1024;
  return `${f.toFixed(1)} ${units[i]}`;
}
