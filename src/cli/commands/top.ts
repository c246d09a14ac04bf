/** `berth top` as docker's: `ps -ef`'s table of a container's processes, read from /proc. */
import type { Command } from "commander";
import { resolveContainer } from "../../docker/names.ts";
import { containerState } from "../../docker/status.ts";
import { TOP_TITLES, topRows } from "../../docker/top.ts";
import { withClient } from "../context.ts";
import { printTable } from "../table.ts";

/** The `ps` options docker's default is made of; others would need a real `ps`. */
const DEFAULT_PS_OPTIONS = ["-ef", "-e", "-f", "-A", "aux"];

export function topCommand(program: Command): void {
  program.command("top").description("Display the running processes of a container")
    .argument("<container>")
    .argument("[ps_options...]", "only ps's default (-ef) is supported")
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (ref: string, psOptions: string[], _opts: unknown, cmd: Command) => {
      const unsupported = psOptions.filter((o) => !DEFAULT_PS_OPTIONS.includes(o));
      if (unsupported.length > 0) {
        throw new Error(
          `Cannot use ps options "${
            unsupported.join(" ")
          }": berth top reads /proc and shows ps -ef's columns only`,
        );
      }
      const rows = await withClient(cmd, async (client) => {
        const c = await resolveContainer(client, ref);
        if (!(await containerState(client, c)).running) throw new Error(`Container ${ref} is not running`);
        const { processes } = await client.tasks.listPids({ containerId: c.id });
        return topRows(processes.map((p) => p.pid).sort((a, b) => a - b));
      });
      printTable([[...TOP_TITLES], ...rows], 3);
    });
}
