/**
 * A spare shim (`berth shim -spare …`): the daemon starts one ahead of need, so a namespace's first
 * container does not wait for a runtime to start. It loads the serving shim's modules (most of the
 * ~55 ms from spawn to listening), then waits for one line on stdin that names the first container it
 * serves (src/core/runtime/spare_shim.ts writes it) and from there is that container's serving shim.
 * It exits unused when its stdin ends: the daemon retired it, or went away.
 */

import type { ShimFlags } from "./flags.ts";
import { serveShim } from "./server.ts";
import { bindLazySymbols } from "../../ffi/lazy_symbols.ts";
import { setProcessNice } from "../../ffi/process.ts";
import { IdleCollector } from "../base/idle_gc.ts";
import { releaseStartupPages } from "../base/startup_pages.ts";

/**
 * What the daemon tells a spare shim when a group needs a shim: the flags it lacked. `id` and `bundle`
 * name the first container, or are empty when the daemon starts the namespace's shim ahead of any.
 */
export interface Adoption {
  readonly namespace: string;
  readonly id: string;
  readonly bundle: string;
  readonly socket: string;
  /** Started ahead: how long it waits for a first container before it exits (the spare's wait). */
  readonly waitMs?: number;
}

/** The adoption in one line of JSON; an error names what is missing. */
export function parseAdoption(line: string): Adoption {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`Spare shim: adoption is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const v = (value ?? {}) as Record<string, unknown>;
  for (const key of ["namespace", "socket"]) {
    if (typeof v[key] !== "string" || v[key] === "") {
      throw new Error(`Spare shim: adoption lacks "${key}"`);
    }
  }
  for (const key of ["id", "bundle"]) {
    if (typeof v[key] !== "string") throw new Error(`Spare shim: adoption lacks "${key}"`);
  }
  if (v.waitMs !== undefined && !(typeof v.waitMs === "number" && v.waitMs >= 0)) {
    throw new Error(`Spare shim: adoption's waitMs ${JSON.stringify(v.waitMs)} is not a duration`);
  }
  return v as unknown as Adoption;
}

/** The first line of `input`, without its newline; undefined when the input ends before one. */
export async function readLine(input: ReadableStream<Uint8Array>): Promise<string | undefined> {
  const decoder = new TextDecoder();
  let text = "";
  const reader = input.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      text += decoder.decode(value, { stream: true });
      const nl = text.indexOf("\n");
      if (nl >= 0) return text.slice(0, nl);
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * What a shim's first container would otherwise pay on its way (profiled: ~5 ms loading Deno's process
 * API on the first runc spawn, ~0.2-9 ms per libc symbol at its first call, ~15 ms in all), done while
 * the spare waits.
 */
function warmUp(): void {
  void Deno.Command;
  bindLazySymbols();
}

/** The priority a shim started for its container would have: runc and the containers inherit it. */
function normalPriority(): void {
  try {
    setProcessNice(0);
  } catch { /* no /proc: it stays niced, and says so in ps */ }
}

export async function serveSpare(flags: ShimFlags): Promise<number> {
  warmUp();
  // Waiting, it holds no more than an idle shim: start-up's garbage collected, the executable's start-up
  // pages handed back (a spare that skipped this measured 34 MB PSS, more than the daemon).
  const collector = new IdleCollector({ afterEach: () => void releaseStartupPages() });
  const line = await readLine(Deno.stdin.readable);
  collector.stop();
  if (line === undefined) return 0; // retired unused
  normalPriority();
  const adoption = parseAdoption(line);
  // runc and its hooks see the namespace as a shim started for it would have.
  Deno.env.set("NAMESPACE", adoption.namespace);
  const { waitMs, ...names } = adoption;
  // Started ahead of any container, it goes with the daemon that started it until one comes: the
  // daemon holds our stdin open while it runs.
  const daemonGone = adoption.id === "" ? readLine(Deno.stdin.readable).then(() => {}) : undefined;
  return await serveShim({ ...flags, ...names, spare: false }, { firstTaskWaitMs: waitMs, daemonGone });
}
