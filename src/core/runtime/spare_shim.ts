/**
 * A spare shim, started ahead of need: a namespace's first container then finds its shim serving, or
 * waits for a line on a pipe, instead of a runtime's start (~55 ms from spawn to listening, of which
 * module loading is most).
 *
 * The daemon keeps at most one spare. When an image is arriving in a namespace where no shim serves (an
 * image created or updated) it starts one at once, while a ctr pull still unpacks, and hands it the
 * namespace's group socket straight away (startAhead): the first container finds the shim listening.
 * When a container is created in such a namespace (and no image arrived before) a spare waits for that
 * container's adoption. A spare loads at the lowest CPU priority (niced
 * by the daemon at spawn, by itself before it loads: src/shim/main.ts), so it takes only a core the
 * unpack leaves idle. One that waited for the unpack to settle was not ready for a `ctr run` right
 * after `ctr pull` (spawn to ready ~100 ms there), which then waited for it.
 * An unused spare is retired after `idleMs`, and a shim started ahead exits after as long without a
 * container, so a daemon that runs nothing holds no spare; a daemon that is killed closes their stdin
 * and both exit. Adopting hands the spare the flags a shim started for the container would have had
 * (src/shim/spare.ts); from then on it is that shim.
 */
import type { BasicLogger } from "../../base/log.ts";
import { spawnClean } from "../../base/spawn.ts";
import { setProcessNice } from "../../../ffi/process.ts";
import type { Envelope } from "../events/mod.ts";
import { type Adoption, readyLine, selfCommand, shimV8Env, type SpareSource } from "./shim_group.ts";

export interface SpareShimOptions {
  /** The daemon's gRPC address: the `-address` of every shim it starts. */
  readonly address: string;
  /** Where shims forward events: TTRPC_ADDRESS. */
  readonly ttrpcAddress: string;
  readonly debug: boolean;
  /** How long a spare waits to be adopted before it is retired. */
  readonly idleMs: number;
  /** How long an adopted spare may take to listen. */
  readonly startTimeoutMs?: number;
  readonly log?: BasicLogger;
}

/**
 * Topics that say an image is arriving in their namespace: a container is likely to follow. ctr records
 * the image before it unpacks it; a daemon-side pull (Transfer, CRI) records it once unpacked, so its
 * own layers' downloads and unpacking do not share the CPU with a loading shim.
 */
const ARRIVING = new Set(["/images/create", "/images/update"]);
/** A container is being made. */
const COMING = "/containers/create";

interface Spare {
  readonly child: Deno.ChildProcess;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  timer?: ReturnType<typeof setTimeout>;
  /** Settles when the process has exited; close() waits for it until the spare is adopted. */
  exited?: Promise<unknown>;
}

export class SpareShims implements SpareSource {
  readonly #opts: SpareShimOptions;
  readonly #stop = new AbortController();
  #spare?: Spare;
  /** Adoptions under way: their group's socket is about to appear, so no other spare is needed. */
  #adopting = 0;
  readonly #exits = new Set<Promise<unknown>>();

  constructor(options: SpareShimOptions) {
    this.#opts = options;
  }

  /** Starts a spare unless one is waiting already. */
  prepare(): void {
    if (this.#spare || this.#stop.signal.aborted || this.#opts.idleMs <= 0) return;
    const args = ["-spare", "-address", this.#opts.address, "-publish-binary", Deno.execPath()];
    if (this.#opts.debug) args.push("-debug");
    const cmd = selfCommand(args);
    const child = spawnClean(cmd.program, {
      args: cmd.args,
      cwd: "/",
      env: { TTRPC_ADDRESS: this.#opts.ttrpcAddress, GRPC_ADDRESS: this.#opts.address, ...shimV8Env() },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    });
    child.unref();
    try {
      // Before the runtime starts its threads, which inherit it: Deno's own start-up is niced too.
      setProcessNice(19, child.pid);
    } catch { /* it exited already, or /proc is not there: it nices itself once it runs */ }
    const spare: Spare = { child, stdin: child.stdin.getWriter() };
    spare.timer = setTimeout(() => this.#retire(spare), this.#opts.idleMs);
    Deno.unrefTimer(spare.timer);
    const exited = child.status.catch(() => {}).finally(() => {
      this.#exits.delete(exited);
      if (this.#spare === spare) this.#retire(spare);
    });
    spare.exited = exited;
    this.#exits.add(exited);
    this.#spare = spare;
    this.#opts.log?.debug("spare shim started", { pid: child.pid });
  }

  /**
   * Acts on events that say a container is on its way to a namespace where `needsShim` says no shim
   * serves yet: an image arriving there calls `ahead` (which starts the namespace's shim with
   * startAhead()), a container created there starts a spare. Ends at close().
   */
  watch(
    events: AsyncIterable<Envelope>,
    needsShim: (namespace: string) => Promise<boolean>,
    ahead: (namespace: string) => Promise<unknown>,
  ): void {
    (async () => {
      for await (const e of events) {
        if (this.#stop.signal.aborted) break;
        if (this.#adopting > 0 || !(ARRIVING.has(e.topic) || (e.topic === COMING && !this.#spare))) continue;
        if (!(await needsShim(e.namespace).catch(() => false))) continue;
        if (e.topic === COMING) this.prepare();
        else await ahead(e.namespace).catch(() => {});
      }
    })().catch(() => {/* the exchange cut this subscriber off: no more spares */});
  }

  /** The signal that ends a watch's subscription: aborted by close(). */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /**
   * Makes the waiting spare the serving shim `adoption` describes. Its pid once it listens; undefined
   * when there is no fitting spare or it failed (the caller starts a shim as it would have).
   */
  async adopt(adoption: Adoption): Promise<number | undefined> {
    const spare = this.#take(adoption);
    if (!spare) return undefined;
    try {
      // It may still be loading, at the lowest priority: from now on a container waits for it.
      setProcessNice(0, spare.child.pid);
    } catch { /* it renices itself once it reads the adoption */ }
    const { namespace, id, bundle, socket } = adoption;
    return await this.#handOver(spare, { namespace, id, bundle, socket }, true);
  }

  /**
   * Makes a spare (the waiting one, else a new one) the serving shim of a group before its first
   * container: an image is arriving in its namespace. It goes on loading at the lowest priority and
   * waits `idleMs` for a container, as a spare would; until one comes it exits with the daemon, which
   * holds its stdin open for that. Its pid once it listens, else undefined.
   */
  async startAhead(adoption: Omit<Adoption, "id" | "bundle">): Promise<number | undefined> {
    this.prepare();
    const spare = this.#take(adoption);
    if (!spare) return undefined;
    const { namespace, socket } = adoption;
    const line = { namespace, id: "", bundle: "", socket, waitMs: this.#opts.idleMs };
    return await this.#handOver(spare, line, false);
  }

  /** The waiting spare, taken out of the pool, when it fits the shim `adoption` describes. */
  #take(adoption: Pick<Adoption, "debug" | "address">): Spare | undefined {
    const spare = this.#spare;
    if (!spare || adoption.debug !== this.#opts.debug || adoption.address !== this.#opts.address) {
      return undefined;
    }
    this.#spare = undefined;
    clearTimeout(spare.timer);
    // From here on it is a shim like any other: the daemon does not wait for it to exit.
    this.#exits.delete(spare.exited!);
    return spare;
  }

  /** Writes the adoption line and waits for the shim to listen; `close`: end its stdin after the line. */
  async #handOver(spare: Spare, line: object, close: boolean): Promise<number | undefined> {
    this.#adopting++;
    try {
      await spare.stdin.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
      if (close) await spare.stdin.close();
      else spare.child.status.finally(() => spare.stdin.close().catch(() => {})).catch(() => {});
      if (await readyLine(spare.child.stdout, this.#opts.startTimeoutMs ?? 10_000)) {
        this.#opts.log?.debug("spare shim adopted", { pid: spare.child.pid, ...line });
        return spare.child.pid;
      }
    } catch {
      /* it exited meanwhile */
    } finally {
      this.#adopting--;
    }
    this.#kill(spare);
    return undefined;
  }

  /** Retires the waiting spare and starts no other; resolves once it has exited. */
  async close(): Promise<void> {
    this.#stop.abort();
    if (this.#spare) this.#retire(this.#spare);
    await Promise.all(this.#exits);
  }

  #retire(spare: Spare): void {
    if (this.#spare === spare) this.#spare = undefined;
    clearTimeout(spare.timer);
    this.#kill(spare);
  }

  #kill(spare: Spare): void {
    try {
      spare.child.kill("SIGKILL");
    } catch { /* exited */ }
    spare.stdin.close().catch(() => {});
    spare.child.stdout.cancel().catch(() => {});
  }
}
