/**
 * This process's stdio on a task's FIFOs, and the signals or window sizes it relays to the task: what
 * `run`, `tasks start|attach|exec` share. It asks only the three Tasks calls of TaskControl, so a caller
 * may load the Tasks service's descriptors when one is first needed (ctr_run_one_call.ts).
 */
import type { Client } from "@connectrpc/connect";
import type { Tasks } from "../gen/services/tasks/v1/tasks_pb.ts";
import { AttachedIO, enterRawMode, type FifoSet, forwardSignals, watchWindowSize } from "./host/stdio.ts";

/** What attaching and relaying ask of the Tasks service. */
export type TaskControl = Pick<Client<typeof Tasks>, "closeIO" | "kill" | "resizePty">;

/** How long output may still flow after a process exited (a leftover holder of its stdout). */
export const OUTPUT_DRAIN_MS = 5000;

/** The local stdio attached to a FIFO set; with a terminal, raw mode until detach() runs. */
export function attachLocal(tasks: TaskControl, fifos: FifoSet, id: string, execId = ""): {
  io: AttachedIO;
  detach(): void;
} {
  const restore = fifos.terminal ? enterRawMode() : () => {};
  const io = new AttachedIO(fifos, {
    stdin: Deno.stdin.readable,
    stdout: Deno.stdout,
    stderr: Deno.stderr,
    // As ctr: a terminal's input has no end of file to pass on, and the next attach still types into it.
    onStdinEnd: fifos.terminal
      ? undefined
      : () => void tasks.closeIO({ containerId: id, execId, stdin: true }).catch(() => {}),
  });
  return {
    io,
    detach: () => {
      io.close();
      restore();
    },
  };
}

/** Forwards resizes (terminal) or signals (otherwise) to a process until the returned function runs. */
export function relay(tasks: TaskControl, id: string, execId: string, terminal: boolean): () => void {
  if (terminal) {
    return watchWindowSize(async (width, height) => {
      await tasks.resizePty({ containerId: id, execId, width, height });
    });
  }
  return forwardSignals(async (signal) => {
    await tasks.kill({ containerId: id, execId, signal });
  });
}
