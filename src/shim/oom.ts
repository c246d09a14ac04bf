/**
 * Watches containers' memory cgroups for OOM kills. cgroup v1: an eventfd registered for
 * memory.oom_control through cgroup.event_control; one poll(2) on a worker thread serves every container
 * of the shim, so watching costs no thread per container. cgroup v2: the oom_kill counter of memory.events,
 * read on a timer.
 */

import { type FdSyscalls, fdSyscalls, O_RDONLY, POLLIN } from "../../ffi/fd.ts";
import type { CgroupMode } from "./cgroup_mode.ts";

interface V1Watch {
  readonly id: string;
  readonly dir: string;
  readonly eventFd: number;
  readonly controlFd: number;
  removed: boolean;
}

const V2_INTERVAL_MS = 1_000;

/** The cgroup of `pid` for `controller` ("memory"; "" for the v2 unified hierarchy), from /proc. */
export function cgroupOf(pid: number, controller: string): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/cgroup`);
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    // "hierarchy-id:controller,list:/path"; the v2 line has an empty controller list.
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    if (controller === "" ? controllers === "" : controllers.split(",").includes(controller)) {
      return line.slice(second + 1);
    }
  }
  return undefined;
}

export class OomWatcher {
  readonly #mode: CgroupMode;
  readonly #sys: FdSyscalls;
  readonly #onOom: (id: string) => void;
  readonly #root: string;
  readonly #v1 = new Map<string, V1Watch>();
  readonly #v2 = new Map<string, { file: string; kills: number }>();
  readonly #toRelease: V1Watch[] = [];
  #wakeFd = -1;
  #loop: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(
    mode: CgroupMode,
    onOom: (id: string) => void,
    options: { sys?: FdSyscalls; root?: string } = {},
  ) {
    this.#mode = mode;
    this.#onOom = onOom;
    this.#sys = options.sys ?? fdSyscalls();
    this.#root = options.root ?? "/sys/fs/cgroup";
  }

  /** Starts watching the memory cgroup that `pid` (the container's init) is in. */
  add(id: string, pid: number): void {
    if (this.#closed) return;
    if (this.#mode === "v2") return this.#addV2(id, pid);
    const path = cgroupOf(pid, "memory");
    if (path === undefined) return;
    const dir = `${this.#root}/memory${path}`;
    const controlFd = this.#sys.open(`${dir}/memory.oom_control`, O_RDONLY);
    let eventFd = -1;
    try {
      eventFd = this.#sys.eventfd(0);
      Deno.writeTextFileSync(`${dir}/cgroup.event_control`, `${eventFd} ${controlFd}`);
    } catch (err) {
      if (eventFd >= 0) this.#sys.close(eventFd);
      this.#sys.close(controlFd);
      throw err;
    }
    this.remove(id);
    this.#v1.set(id, { id, dir, eventFd, controlFd, removed: false });
    this.#wake();
  }

  /**
   * Reads a v2 container's memory.events now rather than at the next tick: its init just exited, maybe
   * killed by the OOM killer, and the cgroup (with its counter) goes away when the task is deleted.
   */
  check(id: string): void {
    const w = this.#v2.get(id);
    if (!w) return;
    const kills = oomKills(w.file);
    if (kills > w.kills) this.#onOom(id);
    w.kills = Math.max(kills, w.kills);
  }

  remove(id: string): void {
    if (this.#v2.delete(id) && this.#v2.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    const w = this.#v1.get(id);
    if (!w) return;
    w.removed = true;
    this.#v1.delete(id);
    if (this.#loop) {
      // poll may be using the descriptors on its worker thread: the loop closes them once it returned.
      this.#toRelease.push(w);
      this.#wake();
    } else {
      this.#release(w);
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const id of [...this.#v1.keys()]) this.remove(id);
    this.#v2.clear();
    if (!this.#loop && this.#wakeFd >= 0) this.#sys.close(this.#wakeFd);
  }

  #wake(): void {
    if (this.#wakeFd < 0) this.#wakeFd = this.#sys.eventfd(0);
    if (this.#loop) {
      this.#sys.writeSync(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer));
      return;
    }
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      if (this.#closed && this.#wakeFd >= 0) {
        this.#sys.close(this.#wakeFd);
        this.#wakeFd = -1;
      }
    });
  }

  async #run(): Promise<void> {
    const counter = new Uint8Array(8);
    try {
      while (!this.#closed && this.#v1.size > 0) {
        const watches = [...this.#v1.values()];
        const ready = await this.#sys.poll([
          { fd: this.#wakeFd, events: POLLIN },
          ...watches.map((w) => ({ fd: w.eventFd, events: POLLIN })),
        ], -1);
        if (ready === null) break;
        if (ready[0]! & POLLIN) await this.#sys.read(this.#wakeFd, counter);
        for (const [i, w] of watches.entries()) {
          if (w.removed || !(ready[i + 1]! & POLLIN)) continue;
          await this.#sys.read(w.eventFd, counter);
          // The event also fires when the cgroup is removed: only a live cgroup had an OOM.
          if (exists(w.dir)) this.#onOom(w.id);
          else this.remove(w.id);
        }
        for (const w of this.#toRelease.splice(0)) this.#release(w);
      }
    } finally {
      for (const w of this.#toRelease.splice(0)) this.#release(w);
    }
  }

  #release(w: V1Watch): void {
    for (const fd of [w.eventFd, w.controlFd]) {
      try {
        this.#sys.close(fd);
      } catch { /* already closed */ }
    }
  }

  #addV2(id: string, pid: number): void {
    const path = cgroupOf(pid, "");
    if (path === undefined) return;
    const file = `${this.#root}${path}/memory.events`;
    this.#v2.set(id, { file, kills: oomKills(file) });
    this.#timer ??= setInterval(() => {
      for (const cid of [...this.#v2.keys()]) this.check(cid);
    }, V2_INTERVAL_MS);
    Deno.unrefTimer(Number(this.#timer));
  }
}

/** The oom_kill counter of a cgroup v2 memory.events file's text (0 when absent). */
export function parseOomKills(text: string): number {
  const m = text.match(/^oom_kill (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

function oomKills(file: string): number {
  try {
    return parseOomKills(Deno.readTextFileSync(file));
  } catch {
    return 0;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
