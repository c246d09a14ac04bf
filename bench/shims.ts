/**
 * Shims of a daemon under test, found by their command line: after containerd's double fork (setsid,
 * reparented to init) a shim is no longer in its daemon's process tree, so memory figures and clean-up
 * look for `-address <daemon socket>` in every process's argv instead.
 */

import { isAlive, type Memory, parseSmapsRollup, processTree } from "./procfs.ts";
import { listeningUnixSockets } from "../tests/helpers/procs.ts";

/** A shim process of the daemon at `socket`. */
export interface ShimProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  /** The unix socket the shim serves its ttrpc API on, when it can be told from argv. */
  readonly shimSocket?: string;
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * Whether argv is a long-lived shim of the daemon serving `socket`: containerd's
 * `containerd-shim-runc-v2 -namespace … -id … -address SOCKET` or Berth's `… shim … -address SOCKET`.
 * The one-shot `start` and `delete` actions of a shim are not counted: they exit within milliseconds.
 */
export function isShimOf(argv: readonly string[], socket: string): boolean {
  if (flag(argv, "-address") !== socket) return false;
  const last = argv[argv.length - 1];
  if (last === "start" || last === "delete") return false;
  const program = (argv[0] ?? "").replace(/^.*\//, "");
  return program.startsWith("containerd-shim") || argv.includes("shim");
}

/**
 * The ttrpc socket path of a shim from its argv: Berth's says `-socket unix://PATH`; containerd 1.6's is
 * `/run/containerd/s/<sha256(address/namespace/id)>`, as its shim.SocketAddress computes it.
 */
export async function shimSocketOf(argv: readonly string[]): Promise<string | undefined> {
  const explicit = flag(argv, "-socket");
  if (explicit) return explicit.replace(/^unix:\/\//, "");
  const address = flag(argv, "-address");
  const ns = flag(argv, "-namespace");
  const id = flag(argv, "-id");
  if (!address || !ns || !id) return undefined;
  const data = new TextEncoder().encode(`${address}/${ns}/${id}`.replace(/\/+/g, "/"));
  const hex = [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `/run/containerd/s/${hex}`;
}

/** argv of a process from /proc/<pid>/cmdline, or undefined when it has exited (or is a kernel thread). */
export async function argvOf(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    if (raw === "") return undefined;
    return raw.replace(/\0$/, "").split("\0");
  } catch {
    return undefined;
  }
}

/** Every live shim of the daemon serving `socket`. */
export async function findShims(socket: string): Promise<ShimProcess[]> {
  const out: ShimProcess[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    const argv = await argvOf(pid);
    if (!argv || !isShimOf(argv, socket)) continue;
    // A Berth spare learns its socket after it started (on stdin): what it listens on says it.
    const shimSocket = await shimSocketOf(argv) ?? listeningUnixSockets(pid)[0];
    out.push({ pid, argv, ...(shimSocket ? { shimSocket } : {}) });
  }
  return out;
}

/** Sums Rss and Pss over pids, skipping those that exited meanwhile. */
export async function memoryOf(pids: readonly number[]): Promise<Memory & { readonly pids: number[] }> {
  let rssKiB = 0;
  let pssKiB = 0;
  const counted: number[] = [];
  for (const p of new Set(pids)) {
    let text: string;
    try {
      text = await Deno.readTextFile(`/proc/${p}/smaps_rollup`);
    } catch {
      continue;
    }
    const m = parseSmapsRollup(text);
    rssKiB += m.rssKiB;
    pssKiB += m.pssKiB;
    counted.push(p);
  }
  return { rssKiB, pssKiB, pids: counted };
}

/**
 * Memory of a daemon and all its shims, not of the containers: the daemon's own process and every shim
 * of its socket, whether or not the shim is still the daemon's child.
 */
export async function daemonAndShimsMemory(
  daemonPid: number,
  socket: string,
): Promise<Memory & { readonly pids: number[]; readonly shims: number }> {
  const shims = await findShims(socket);
  const m = await memoryOf([daemonPid, ...shims.map((s) => s.pid)]);
  if (!m.pids.includes(daemonPid)) throw new Error(`Cannot measure daemon ${daemonPid}: it has exited`);
  return { ...m, shims: shims.length };
}

/** (PSS(n) − PSS(1)) / (n − 1): what one more running container costs. */
export function marginal(at1: number, atN: number, n: number): number {
  if (!(n > 1)) throw new RangeError(`Cannot take a marginal cost over ${n} containers: need n > 1`);
  return (atN - at1) / (n - 1);
}

/**
 * SIGKILLs every shim of the daemon at `socket` and what runs under it (the containers), and removes
 * the shims' sockets. For clean-up: Berth's idle shims linger, containerd's outlive a killed daemon.
 */
export async function killShims(socket: string): Promise<number> {
  const shims = await findShims(socket);
  const victims: number[] = [];
  for (const s of shims) victims.push(...(await processTree(s.pid)));
  for (const p of victims) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
  const deadline = Date.now() + 3_000;
  while (victims.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const s of shims) {
    if (s.shimSocket) await Deno.remove(s.shimSocket).catch(() => {});
  }
  return shims.length;
}
