/** `berth wait` as docker's: blocks until each container stops, then prints its exit code. */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { LABELS } from "../../docker/labels.ts";
import { forEachContainer } from "../docker/each.ts";

export function waitCommand(program: Command): void {
  program.command("wait").description("Block until one or more containers stop, then print their exit codes")
    .argument("<container...>")
    .action((refs: string[], _opts: unknown, cmd: Command) =>
      forEachContainer(cmd, refs, async (client, c, ref) => {
        try {
          const res = await client.tasks.wait({ containerId: c.id }, { timeoutMs: 0 });
          console.log(res.exitStatus);
        } catch (err) {
          if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
          // No task: it stopped and `stop`/`rm` deleted the task, recording its status; or it never ran.
          const recorded = c.labels[LABELS.exitCode];
          if (recorded === undefined || recorded === "") {
            throw new Error(`Container ${ref} has no task to wait for: it was never started`);
          }
          console.log(Number(recorded));
        }
      })
    );
}
