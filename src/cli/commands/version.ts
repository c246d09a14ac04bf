import type { Command } from "commander";
import { revision, version } from "../../version.ts";
import { withClient } from "../context.ts";

export function versionCommand(program: Command): void {
  program.command("version").description("Print the client and server versions").action(
    async (_o, cmd: Command) => {
      console.log(
        `Client:\n  Version:  ${version}\n  Revision: ${revision}\n  Deno version: ${Deno.version.deno}\n`,
      );
      await withClient(cmd, async (client) => {
        const v = await client.version.version({});
        const server = await client.introspection.server({}).catch(() => undefined);
        console.log(`Server:\n  Version:  ${v.version}\n  Revision: ${v.revision}`);
        if (server) console.log(`  UUID: ${server.uuid}`);
      });
    },
  );
}
