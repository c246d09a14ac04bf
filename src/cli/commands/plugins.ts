import type { Command } from "commander";
import { printTable } from "../table.ts";
import { withClient } from "../context.ts";

export function pluginsCommand(program: Command): void {
  const plugins = program.command("plugins").alias("plugin").description(
    "Provides information about plugins",
  );
  plugins.command("ls").alias("list").description("List plugins").option(
    "-d, --detailed",
    "show the exports and the init error of each plugin",
  ).argument("[filters...]").action(async (filters: string[], opts: { detailed?: boolean }, cmd: Command) => {
    await withClient(cmd, async (client) => {
      const res = await client.introspection.plugins({ filters });
      if (opts.detailed) {
        for (const p of res.plugins) {
          console.log(`Type:          ${p.type}\nID:            ${p.id}`);
          if (p.requires.length) {
            console.log(`Requires:\n${p.requires.map((r) => `               ${r}`).join("\n")}`);
          }
          const exports = Object.entries(p.exports);
          if (exports.length) {
            console.log(`Exports:\n${exports.map(([k, v]) => `               ${k}  ${v}`).join("\n")}`);
          }
          if (p.initErr) {
            console.log(
              `Error:\n               Code: ${p.initErr.code}\n               Message: ${p.initErr.message}`,
            );
          }
          console.log();
        }
        return;
      }
      printTable([
        ["TYPE", "ID", "PLATFORMS", "STATUS"],
        ...res.plugins.map((p) => [
          p.type,
          p.id,
          p.platforms.length
            ? p.platforms.map((pl) => `${pl.os}/${pl.architecture}${pl.variant ? `/${pl.variant}` : ""}`)
              .join(",")
            : "-",
          p.initErr ? (p.initErr.message.includes("skip plugin") ? "skip" : "error") : "ok",
        ]),
      ]);
    });
  });
}
