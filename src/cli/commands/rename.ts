/**
 * `berth rename` as docker's: a new `nerdctl/name` label (only that label is written: a field mask), and
 * the new name in the hosts store, so the container's peers find it by its new name.
 */
import type { Command } from "commander";
import { HostsStore } from "../../docker/hosts.ts";
import { LABELS } from "../../docker/labels.ts";
import { checkName, checkNameFree, nameOf, resolveContainer } from "../../docker/names.ts";
import { dockerPaths, withClient } from "../context.ts";

export function renameCommand(program: Command): void {
  program.command("rename").description("Rename a container")
    .argument("<container>").argument("<new_name>")
    .action(async (ref: string, newName: string, _opts: unknown, cmd: Command) => {
      const paths = dockerPaths(cmd);
      await withClient(cmd, async (client) => {
        const c = await resolveContainer(client, ref);
        const name = newName.replace(/^\//, "");
        checkName(name);
        if (nameOf(c) === name) {
          throw new Error(`Cannot rename ${ref} to "${name}": that is its name already`);
        }
        await checkNameFree(client, name, c.id);
        await client.containers.update({
          container: { ...c, labels: { ...c.labels, [LABELS.name]: name } },
          updateMask: { paths: [`labels.${LABELS.name}`] },
        });
        const hosts = new HostsStore(paths.dataStore, paths.namespace);
        const meta = (await hosts.list()).find((m) => m.id === c.id);
        if (meta) await hosts.attach({ ...meta, name });
      });
    });
}
