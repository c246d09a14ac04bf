/** `berth pause` as docker's: freezes every process of each container (Tasks.Pause). */
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { containerState } from "../../docker/status.ts";
import { forEachContainer } from "../docker/each.ts";

/** Pauses (`pause`) or resumes (`resume`) a container's task, refusing as docker does when it cannot. */
export async function setPaused(
  client: BerthClient,
  c: Container,
  ref: string,
  pause: boolean,
): Promise<void> {
  const state = await containerState(client, c);
  if (!state.running) throw new Error(`Container ${ref} is not running`);
  if (pause && state.paused) throw new Error(`Container ${ref} is already paused`);
  if (!pause && !state.paused) throw new Error(`Container ${ref} is not paused`);
  if (pause) await client.tasks.pause({ containerId: c.id });
  else await client.tasks.resume({ containerId: c.id });
}

export function pauseCommand(program: Command): void {
  program.command("pause").description("Pause all processes within one or more containers")
    .argument("<container...>")
    .action((refs: string[], _opts: unknown, cmd: Command) =>
      forEachContainer(cmd, refs, async (client, c, ref) => {
        await setPaused(client, c, ref, true);
        console.log(ref);
      })
    );
}
