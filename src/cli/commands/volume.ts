/** `berth volume …` as docker's: create, ls, inspect, rm, prune over nerdctl's volume store. */
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import { listContainers } from "../../docker/names.ts";
import { renderTemplate } from "../../docker/template.ts";
import {
  createVolume,
  inspectVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  type Volume,
  type VolumeFilters,
  volumesInUse,
} from "../../docker/volumes.ts";
import { dockerPaths, repeatable, withClient } from "../context.ts";
import { formatLabels, parseLabelArgs, printTable } from "../table.ts";

/** The volumes the namespace's containers use, with their ids, asked of the daemon. */
async function inUse(client: BerthClient): Promise<Map<string, string[]>> {
  return volumesInUse(await listContainers(client));
}

/** Docker's `--filter` values for volumes: label=K[=V], name=N, dangling=true|false. */
export function parseVolumeFilters(args: readonly string[]): Omit<VolumeFilters, "inUse"> {
  const label: string[] = [];
  const name: string[] = [];
  let dangling: boolean | undefined;
  for (const arg of args) {
    const i = arg.indexOf("=");
    const key = i < 0 ? arg : arg.slice(0, i);
    const value = i < 0 ? "" : arg.slice(i + 1);
    if (key === "label") label.push(value);
    else if (key === "name") name.push(value);
    else if (key === "dangling") {
      if (!["true", "false", "1", "0"].includes(value)) {
        throw new Error(`Invalid filter "${arg}": dangling takes true or false`);
      }
      dangling = value === "true" || value === "1";
    } else {throw new Error(
        `Invalid filter "${arg}": use label=KEY[=VALUE], name=NAME or dangling=true|false`,
      );}
  }
  return { label, name, dangling };
}

/** A row of `volume ls --format`: docker's fields, labels as `k=v,…`. */
function lsRow(v: Volume): Record<string, string> {
  return {
    Driver: v.Driver,
    Labels: formatLabels(v.Labels),
    Links: "N/A",
    Mountpoint: v.Mountpoint,
    Name: v.Name,
    Scope: v.Scope,
    Size: "N/A",
  };
}

async function confirm(question: string): Promise<boolean> {
  await Deno.stdout.write(new TextEncoder().encode(`${question} [y/N] `));
  const buf = new Uint8Array(64);
  const n = await Deno.stdin.read(buf);
  return /^y(es)?$/i.test(new TextDecoder().decode(buf.subarray(0, n ?? 0)).trim());
}

export function volumeCommand(program: Command): void {
  const volume = program.command("volume").alias("volumes").description("Manage volumes");

  volume.command("create").description("Create a volume (an anonymous one without a name)")
    .argument("[name]")
    .option("--label <key=value>", "set a label on the volume", repeatable)
    .action(async (name: string | undefined, opts: { label?: string[] }, cmd: Command) => {
      const v = await createVolume(dockerPaths(cmd), name, parseLabelArgs(opts.label ?? []));
      console.log(v.Name);
    });

  volume.command("ls").alias("list").description("List volumes")
    .option("-q, --quiet", "only display volume names")
    .option("--format <format>", '"table", "json" or a Go template such as {{.Name}}')
    .option("-f, --filter <filter>", "label=KEY[=VALUE], name=NAME, dangling=true|false", repeatable)
    .action(async (opts: { quiet?: boolean; format?: string; filter?: string[] }, cmd: Command) => {
      const filters: VolumeFilters = parseVolumeFilters(opts.filter ?? []);
      const paths = dockerPaths(cmd);
      const used = filters.dangling === undefined ? undefined : await withClient(cmd, inUse);
      const list = await listVolumes(paths, { ...filters, inUse: used ? new Set(used.keys()) : undefined });
      if (opts.quiet) return list.forEach((v) => console.log(v.Name));
      const format = opts.format ?? "table";
      if (format === "json") return list.forEach((v) => console.log(JSON.stringify(lsRow(v))));
      if (format !== "table") return list.forEach((v) => console.log(renderTemplate(format, lsRow(v))));
      printTable([["DRIVER", "VOLUME NAME"], ...list.map((v) => [v.Driver, v.Name])]);
    });

  volume.command("inspect").description("Display detailed information on volumes")
    .argument("<names...>")
    .option("--format <format>", "a Go template such as {{.Mountpoint}}")
    .action(async (names: string[], opts: { format?: string }, cmd: Command) => {
      const paths = dockerPaths(cmd);
      const found: Volume[] = [];
      let missing = 0;
      for (const name of names) {
        try {
          found.push(await inspectVolume(paths, name));
        } catch (err) {
          console.error(`berth: ${(err as Error).message}`);
          missing++;
        }
      }
      if (opts.format) found.forEach((v) => console.log(renderTemplate(opts.format!, { ...v })));
      else console.log(JSON.stringify(found, null, 4));
      if (missing) throw new Error(`${missing} of ${names.length} volumes were not found`);
    });

  volume.command("rm").alias("remove").description("Remove volumes that no container uses")
    .argument("<names...>")
    .option("-f, --force", "ignore volumes that do not exist")
    .action(async (names: string[], opts: { force?: boolean }, cmd: Command) => {
      const paths = dockerPaths(cmd);
      const inUseBy = await withClient(cmd, inUse);
      let failed = 0;
      for (const name of names) {
        try {
          await removeVolume(paths, name, { inUseBy });
          console.log(name);
        } catch (err) {
          if (opts.force && /^No such volume/.test((err as Error).message)) continue;
          console.error(`berth: ${(err as Error).message}`);
          failed++;
        }
      }
      if (failed) throw new Error(`${failed} of ${names.length} volumes were not removed`);
    });

  volume.command("prune").description("Remove unused anonymous volumes (every unused one with --all)")
    .option("-f, --force", "do not prompt for confirmation")
    .option("-a, --all", "remove every unused volume, not only anonymous ones")
    .action(async (opts: { force?: boolean; all?: boolean }, cmd: Command) => {
      const what = opts.all
        ? "all volumes not used by at least one container"
        : "all anonymous local volumes not used by at least one container";
      if (
        !opts.force &&
        !(await confirm(`WARNING! This will remove ${what}.\nAre you sure you want to continue?`))
      ) {
        return;
      }
      const inUseBy = await withClient(cmd, inUse);
      const removed = await pruneVolumes(dockerPaths(cmd), { inUseBy, all: opts.all });
      console.log("Deleted Volumes:");
      removed.forEach((name) => console.log(name));
    });
}
