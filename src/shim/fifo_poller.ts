/**
 * Reads FIFOs for every process of the shim with one poll(2) on one worker thread. A blocking open or
 * read of a FIFO holds one of the runtime's blocking-pool threads until a writer comes, and a shim that
 * kept one per container (ctr run -d leaves stdin FIFOs nobody writes to) ran out of threads after ~30
 * containers and hung. Here a FIFO is opened O_NONBLOCK at once, waited for by the shared poll, and read
 * only when poll says there is data or its writer left.
 */

import { type FdSyscalls, fdSyscalls, O_NONBLOCK, O_RDONLY, POLLERR, POLLHUP, POLLIN } from "../../ffi/fd.ts";

type Sink = (chunk: Uint8Array | null) => void;

export class FifoPoller {
  readonly #sys: FdSyscalls;
  readonly #sinks = new Map<number, Sink>();
  readonly #toClose: number[] = [];
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
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        fd = this.#sys.open(path, O_RDONLY | O_NONBLOCK);
        this.#sinks.set(fd, (chunk) => {
          if (chunk) return controller.enqueue(chunk);
          this.#remove(fd);
          controller.close();
        });
        this.#wake();
      },
      cancel: () => this.#remove(fd),
    });
  }

  /** Descriptors currently watched (for tests). */
  get size(): number {
    return this.#sinks.size;
  }

  #remove(fd: number): void {
    if (!this.#sinks.delete(fd)) return;
    // The poll thread may be looking at it: close only once that poll returned.
    this.#toClose.push(fd);
    if (this.#loop) this.#wake();
    else this.#closePending();
  }

  #closePending(): void {
    for (const fd of this.#toClose.splice(0)) {
      try {
        this.#sys.close(fd);
      } catch { /* already closed */ }
    }
  }

  #wake(): void {
    if (this.#wakeFd < 0) this.#wakeFd = this.#sys.eventfd(0);
    if (this.#loop) {
      this.#sys.writeSync(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer));
      return;
    }
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      this.#closePending();
      // Something was added while the loop was finishing: go again.
      if (this.#sinks.size > 0) this.#wake();
    });
  }

  async #run(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    const wakeBuf = new Uint8Array(8);
    while (this.#sinks.size > 0) {
      const fds = [this.#wakeFd, ...this.#sinks.keys()];
      const revents = await this.#sys.poll(fds.map((fd) => ({ fd, events: POLLIN })), -1);
      this.#closePending();
      if (revents === null) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (revents[0]) this.#sys.readNow(this.#wakeFd, wakeBuf);
      for (let i = 1; i < fds.length; i++) {
        if (!((revents[i] ?? 0) & (POLLIN | POLLHUP | POLLERR))) continue;
        const fd = fds[i]!;
        for (;;) {
          const sink = this.#sinks.get(fd);
          if (!sink) break;
          const n = this.#sys.readNow(fd, buf);
          if (n > 0) sink(buf.slice(0, n));
          else {
            // 0: the last writer closed it; -1: nothing more for now (EAGAIN).
            if (n === 0) sink(null);
            break;
          }
        }
      }
    }
  }
}

let shared: FifoPoller | undefined;

/** The shim's one poller. */
export function fifoPoller(): FifoPoller {
  return shared ??= new FifoPoller();
}
