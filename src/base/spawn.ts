/**
 * Starting child processes that inherit nothing but their stdio. The daemon's API connections are
 * accepted by node-compat sockets, which lack FD_CLOEXEC: a long-lived child (a shim) that inherits one
 * keeps a client's connection open after the daemon dies, so that client's Wait or event stream never
 * ends. Marking every descriptor close-on-exec in the same synchronous step as the spawn leaves no
 * await in between for a connection to be accepted in.
 */
import { fdSyscalls } from "../../ffi/fd.ts";

/** Spawns `program` like `new Deno.Command(program, options).spawn()`, passing on no descriptor above 2. */
export function spawnClean(program: string, options: Deno.CommandOptions): Deno.ChildProcess {
  fdSyscalls().closeOnExecAll();
  return new Deno.Command(program, options).spawn();
}

/** Runs `program` to completion like `Deno.Command.output()`, passing on no descriptor above 2. */
export function outputClean(program: string, options: Deno.CommandOptions): Promise<Deno.CommandOutput> {
  return spawnClean(program, { stdout: "piped", stderr: "piped", ...options }).output();
}
