/** `berth network …` as nerdctl's: create, ls, inspect, rm, prune over the CNI conf folder. */
import type { Command } from "commander";
import {
  createNetwork,
  ensureDefaultNetwork,
  inspectNetwork,
  listNetworks,
  type NetworkDetails,
  type NetworkInfo,
  pruneNetworks,
  removeNetwork,
} from "../../docker/networks.ts";
import { dockerPaths, repeatable } from "../context.ts";
import { parseLabelArgs, printTable } from "../table.ts";

/** Docker's `network inspect` shape. */
export function inspectJson(n: NetworkDetails): Record<string, unknown> {
  const containers: Record<string, unknown> = {};
  for (const c of n.containers) {
    containers[c.id] = { Name: c.name, Namespace: c.namespace, IPv4Address: c.ip };
  }
  return {
    Name: n.name,
    Id: n.id,
    Driver: n.driver,
    IPAM: {
      Config: n.subnets.map((
        s,
      ) => (s.gateway ? { Subnet: s.subnet, Gateway: s.gateway } : { Subnet: s.subnet })),
    },
    Labels: { ...n.labels },
    Containers: containers,
  };
}

/** A row of `network ls --format json`: nerdctl's fields. */
function lsRow(n: NetworkInfo): Record<string, string> {
  return {
    ID: n.id.slice(0, 12),
    Name: n.name,
    Driver: n.driver,
    Labels: Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(","),
    File: n.file,
  };
}

export function networkCommand(program: Command): void {
  const network = program.command("network").alias("networks").description("Manage networks");

  network.command("create").description("Create a bridge network")
    .argument("<name>")
    .option("--subnet <cidr>", "the network's subnet (default: the next free 10.4.N.0/24)")
    .option("--gateway <ip>", "the gateway's address (default: the subnet's first)")
    .option("--label <key=value>", "set a label on the network", repeatable)
    .option("-d, --driver <driver>", "only bridge", "bridge")
    .action(
      async (
        name: string,
        opts: { subnet?: string; gateway?: string; label?: string[]; driver: string },
        cmd: Command,
      ) => {
        const paths = dockerPaths(cmd);
        await ensureDefaultNetwork(paths);
        const net = await createNetwork(paths, name, {
          subnet: opts.subnet,
          gateway: opts.gateway,
          labels: parseLabelArgs(opts.label ?? []),
          driver: opts.driver,
        });
        console.log(net.id);
      },
    );

  network.command("ls").alias("list").description("List networks")
    .option("-q, --quiet", "only display network ids")
    .option("--format <format>", '"table" or "json"')
    .action(async (opts: { quiet?: boolean; format?: string }, cmd: Command) => {
      const paths = dockerPaths(cmd);
      await ensureDefaultNetwork(paths);
      const list = await listNetworks(paths);
      if (opts.quiet) return list.forEach((n) => console.log(n.id.slice(0, 12)));
      const format = opts.format ?? "table";
      if (format === "json") return list.forEach((n) => console.log(JSON.stringify(lsRow(n))));
      if (format !== "table") throw new Error(`Invalid --format "${format}": use table or json`);
      printTable([["NETWORK ID", "NAME", "FILE"], ...list.map((n) => [n.id.slice(0, 12), n.name, n.file])]);
    });

  network.command("inspect").description("Display detailed information on networks")
    .argument("<names...>")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      const paths = dockerPaths(cmd);
      await ensureDefaultNetwork(paths);
      const found: Record<string, unknown>[] = [];
      let missing = 0;
      for (const name of names) {
        try {
          found.push(inspectJson(await inspectNetwork(paths, name)));
        } catch (err) {
          console.error(`berth: ${(err as Error).message}`);
          missing++;
        }
      }
      console.log(JSON.stringify(found, null, 4));
      if (missing) throw new Error(`${missing} of ${names.length} networks were not found`);
    });

  network.command("rm").alias("remove").description("Remove networks no container is attached to")
    .argument("<names...>")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      const paths = dockerPaths(cmd);
      let failed = 0;
      for (const name of names) {
        try {
          await removeNetwork(paths, name);
          console.log(name);
        } catch (err) {
          console.error(`berth: ${(err as Error).message}`);
          failed++;
        }
      }
      if (failed) throw new Error(`${failed} of ${names.length} networks were not removed`);
    });

  network.command("prune").description("Remove every user network no container is attached to")
    .option("-f, --force", "do not prompt for confirmation (accepted for docker's sake; never prompts)")
    .action(async (_opts: unknown, cmd: Command) => {
      const removed = await pruneNetworks(dockerPaths(cmd));
      console.log("Deleted Networks:");
      removed.forEach((name) => console.log(name));
    });
}
