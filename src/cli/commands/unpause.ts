/** `berth unpause` as docker's: thaws each paused container (Tasks.Resume). */
import type { Command } from "commander";
import { forEachContainer } from "../docker/each.ts";
import { setPaused } from "./pause.ts";

export function unpauseCommand(program: Command): void {
  program.command("unpause").description("Unpause all processes within one or more containers")
    .argument("<container...>")
    .action((refs: string[], _opts: unknown, cmd: Command) =>
      forEachContainer(cmd, refs, async (client, c, ref) => {
        await setPaused(client, c, ref, false);
        console.log(ref);
      })
    );
}
