import type { Command } from "commander";
import { formatLabels, parseLabelArgs, printTable } from "../table.ts";
import { withClient } from "../context.ts";

export function namespacesCommand(program: Command): void {
  const ns = program.command("namespaces").alias("namespace").alias("ns").description("Manage namespaces");
  ns.command("ls").alias("list").description("List namespaces").option("-q, --quiet", "print only the names")
    .action(async (opts: { quiet?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { namespaces } = await client.namespaces.list({});
        if (opts.quiet) {
          for (const n of namespaces) console.log(n.name);
          return;
        }
        printTable([["NAME", "LABELS"], ...namespaces.map((n) => [n.name, formatLabels(n.labels)])], 1);
      });
    });
  ns.command("create").alias("c").description("Create a namespace").argument("<name>").argument(
    "[labels...]",
    "KEY=VALUE labels",
  ).action(async (name: string, labels: string[], _o, cmd: Command) => {
    await withClient(cmd, async (client) => {
      await client.namespaces.create({ namespace: { name, labels: parseLabelArgs(labels) } });
    });
  });
  ns.command("rm").alias("remove").description("Remove one or more namespaces").argument("<names...>")
    .action(async (names: string[], _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        let failed = 0;
        for (const name of names) {
          try {
            await client.namespaces.delete({ name });
            console.log(name);
          } catch (err) {
            failed++;
            console.error(`berth: Cannot remove namespace "${name}": ${(err as Error).message}`);
          }
        }
        if (failed) throw new Error(`${failed} of ${names.length} namespaces were not removed`);
      });
    });
  ns.command("label").description("Set or clear labels of a namespace (KEY= clears)").argument("<name>")
    .argument(
      "[labels...]",
      "KEY=VALUE labels",
    ).action(async (name: string, labels: string[], _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const parsed = parseLabelArgs(labels);
        const paths = Object.keys(parsed).map((k) => `labels.${k}`);
        await client.namespaces.update({ namespace: { name, labels: parsed }, updateMask: { paths } });
      });
    });
}
