/**
 * Reads FIFOs, and reads and writes pty masters, for every process of the shim with one poll(2) on one
 * worker thread. A blocking open, read or write holds one of the runtime's blocking-pool threads until
 * the peer acts, and a shim that kept one per container (ctr run -d leaves stdin FIFOs nobody writes to;
 * a terminal's master is read for as long as the container lives) ran out of threads after ~30
 * containers and hung. Here every descriptor is non-blocking, waited for by the shared poll, and read or
 * written on the event loop only when poll says it is ready.
 */

import {
  EAGAIN,
  type FdSyscalls,
  fdSyscalls,
  O_NONBLOCK,
  O_RDONLY,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLOUT,
} from "../../ffi/fd.ts";

/** A descriptor watched by the poller; see FdPoller.attach(). */
export interface PolledFd {
  /**
   * What the descriptor yields, ending at end of file or on a read error (EIO from a pty master once
   * every holder of its other side closed it). Reading pauses while the stream's queue is full.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** Writes all of `data`, waiting in the poll while the descriptor is full; false once a write failed. */
  write(data: Uint8Array): Promise<boolean>;
  /** Stops watching; resolves once the poll thread no longer uses the descriptor, so it may be closed. */
  release(): Promise<void>;
}

interface Watch {
  /** Takes what was read; null at the end. Absent when nobody reads (any more). */
  sink?: (chunk: Uint8Array | null) => void;
  /** The reader's queue is full: leave the data in the kernel until it pulls. */
  paused: boolean;
  /** Writes waiting for room; each learns whether the descriptor became writable. */
  writers: ((writable: boolean) => void)[];
  /** Runs once the poll thread is done with the descriptor (closes it when the poller owns it). */
  onRelease: () => void;
}

export class FdPoller {
  readonly #sys: FdSyscalls;
  readonly #watches = new Map<number, Watch>();
  readonly #afterPoll: (() => void)[] = [];
  #wakeFd = -1;
  #loop: Promise<void> | undefined;

  constructor(sys: FdSyscalls = fdSyscalls()) {
    this.#sys = sys;
  }

  /**
   * What writers send to the FIFO at `path`, ending when the last writer closes it (a FIFO no writer
   * ever opens simply stays empty). Cancelling the stream closes the descriptor.
   */
  open(path: string): ReadableStream<Uint8Array> {
    let fd = -1;
    return this.#readable(() => {
      fd = this.#sys.open(path, O_RDONLY | O_NONBLOCK);
      this.#watch(fd, () => this.#close(fd));
      return fd;
    }, () => this.#unwatch(fd));
  }

  /**
   * Watches `fd`, which the caller opened and keeps owning (a pty master received from runc), for
   * writing and, unless `read` is false, reading. The descriptor is made non-blocking; close it only after
   * release() resolved.
   */
  attach(fd: number, options: { read?: boolean } = {}): PolledFd {
    this.#sys.setNonBlocking(fd);
    let released: Promise<void> | undefined;
    let resolveReleased!: () => void;
    const done = new Promise<void>((r) => resolveReleased = r);
    this.#watch(fd, resolveReleased);
    const readable = options.read === false
      ? new ReadableStream<Uint8Array>({ start: (c) => c.close() })
      : this.#readable(() => fd, () => {
        const w = this.#watches.get(fd);
        if (w) w.sink = undefined;
      });
    return {
      readable,
      write: (data) => this.#write(fd, data),
      release: () => {
        if (!released) {
          this.#unwatch(fd);
          released = done;
        }
        return released;
      },
    };
  }

  /** Descriptors currently watched (for tests). */
  get size(): number {
    return this.#watches.size;
  }

  #readable(start: () => number, cancel: () => void): ReadableStream<Uint8Array> {
    let fd = -1;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        fd = start();
        const w = this.#watches.get(fd)!;
        w.sink = (chunk) => {
          if (!chunk) {
            w.sink = undefined;
            cancel();
            try {
              controller.close();
            } catch { /* cancelled by its reader */ }
            return;
          }
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 1) <= 0) w.paused = true;
        };
        this.#changed();
      },
      pull: () => {
        const w = this.#watches.get(fd);
        if (w?.paused) {
          w.paused = false;
          this.#changed();
        }
      },
      cancel,
    }, { highWaterMark: 4 });
  }

  #watch(fd: number, onRelease: () => void): void {
    this.#watches.set(fd, { paused: false, writers: [], onRelease });
  }

  #unwatch(fd: number): void {
    const w = this.#watches.get(fd);
    if (!w) return;
    this.#watches.delete(fd);
    for (const wake of w.writers.splice(0)) wake(false);
    // A reader still waiting sees the end.
    const sink = w.sink;
    w.sink = undefined;
    sink?.(null);
    // The poll thread may be looking at it: release only once that poll returned.
    this.#afterPoll.push(w.onRelease);
    if (this.#loop) this.#changed();
    else this.#runAfterPoll();
  }

  #close(fd: number): void {
    try {
      this.#sys.close(fd);
    } catch { /* already closed */ }
  }

  async #write(fd: number, data: Uint8Array): Promise<boolean> {
    // A private copy: the caller may reuse its buffer while this waits for room.
    const buf = new Uint8Array(data);
    let off = 0;
    while (off < buf.length) {
      const w = this.#watches.get(fd);
      if (!w) return false;
      const n = this.#sys.writeAvailable(fd, buf.subarray(off));
      if (n > 0) {
        off += n;
        continue;
      }
      if (n !== -EAGAIN) return false;
      const writable = await new Promise<boolean>((resolve) => {
        w.writers.push(resolve);
        this.#changed();
      });
      if (!writable) return false;
    }
    return true;
  }

  #runAfterPoll(): void {
    for (const fn of this.#afterPoll.splice(0)) fn();
  }

  /** The watched set or its interests changed: start the loop, or make its poll start over. */
  #changed(): void {
    if (this.#wakeFd < 0) this.#wakeFd = this.#sys.eventfd(0);
    if (this.#loop) {
      this.#sys.writeSync(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer));
      return;
    }
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      this.#runAfterPoll();
      // Something was added while the loop was finishing: go again.
      if (this.#watches.size > 0) this.#changed();
    });
  }

  async #run(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    const wakeBuf = new Uint8Array(8);
    while (this.#watches.size > 0) {
      const polled = [{ fd: this.#wakeFd, events: POLLIN }];
      for (const [fd, w] of this.#watches) {
        const events = (w.sink && !w.paused ? POLLIN : 0) | (w.writers.length > 0 ? POLLOUT : 0);
        // Without interest it stays out: poll reports a hang-up even for no events, and would spin.
        if (events) polled.push({ fd, events });
      }
      const revents = await this.#sys.poll(polled, -1);
      this.#runAfterPoll();
      if (revents === null) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (revents[0]) this.#sys.readNow(this.#wakeFd, wakeBuf);
      for (let i = 1; i < polled.length; i++) {
        const ev = revents[i] ?? 0;
        if (!ev) continue;
        const fd = polled[i]!.fd;
        const w = this.#watches.get(fd);
        if (!w) continue;
        if (polled[i]!.events & POLLOUT) {
          // A hang-up without room fails the writers rather than waking them to spin on EAGAIN.
          for (const wake of w.writers.splice(0)) wake((ev & POLLOUT) !== 0);
        }
        if (polled[i]!.events & POLLIN && ev & (POLLIN | POLLHUP | POLLERR)) this.#drain(fd, w, buf);
      }
    }
  }

  /** Reads what is there now; ends the reader at end of file or on an error other than EAGAIN. */
  #drain(fd: number, w: Watch, buf: Uint8Array<ArrayBuffer>): void {
    while (w.sink && !w.paused) {
      const n = this.#sys.readAvailable(fd, buf);
      if (n > 0) w.sink(buf.slice(0, n));
      else if (n === -EAGAIN) break;
      else w.sink(null); // 0: the last writer closed it; EIO: a pty's other side is gone
    }
  }
}

let shared: FdPoller | undefined;

/** The shim's one poller. */
export function fdPoller(): FdPoller {
  return shared ??= new FdPoller();
}
