/**
 * `berth shim …`: containerd's shim v2 command line, as containerd-shim-runc-v2 takes it.
 *
 *   berth shim -namespace NS -id ID -address DAEMON_SOCK [-publish-binary P] [-debug] [-bundle DIR] ACTION
 *
 * ACTION `start` finds or starts the serving shim of the container's group and prints its address;
 * `delete` cleans up after a dead shim and prints a DeleteResponse; no action serves the Task API on
 * -socket. The working directory is the bundle; env TTRPC_ADDRESS names the daemon's event socket, and
 * stdin may carry the runtime options (a protobuf Any). `-spare` (Berth's daemon only) loads the serving
 * shim and waits on stdin for the container it will serve (spare.ts).
 */

import { parseShimFlags, type ShimFlags } from "./flags.ts";
import { unmapLargeAllocations } from "../base/large_allocations.ts";

export async function shimMain(args: string[]): Promise<number> {
  let flags: ShimFlags;
  try {
    flags = parseShimFlags(args);
  } catch (err) {
    console.error(`berth shim: ${(err as Error).message}`);
    return 2;
  }
  if (flags.version) {
    console.log(`berth shim:\n  Version:  ${Deno.build.standalone ? "compiled" : "source"}\n`);
    return 0;
  }
  if (!flags.namespace && !flags.spare) {
    console.error("berth shim: shim namespace cannot be empty");
    return 1;
  }
  try {
    if (flags.spare) {
      unmapLargeAllocations();
      // Loading the serving shim takes ~50 ms of a core: at the lowest priority, so a spare started
      // while a pull unpacks (or anything else runs) takes only what is idle. serveSpare() resets it.
      const { setProcessNice } = await import("../../ffi/process.ts");
      setProcessNice(19);
      const { serveSpare } = await import("./spare.ts");
      return await serveSpare(flags);
    }
    switch (flags.action) {
      case "start": {
        const { startShim } = await import("./manager.ts");
        return await startShim(flags);
      }
      case "delete": {
        const { deleteShim } = await import("./manager.ts");
        return await deleteShim(flags);
      }
      case "": {
        unmapLargeAllocations();
        const { serveShim } = await import("./server.ts");
        return await serveShim(flags);
      }
      default:
        console.error(`berth shim: unknown action ${JSON.stringify(flags.action)}`);
        return 2;
    }
  } catch (err) {
    // containerd shows the start action's combined output as the error: keep it to one line.
    await Deno.stderr.write(
      new TextEncoder().encode(`berth shim ${flags.action}: ${(err as Error).message}`),
    );
    return 1;
  }
}
