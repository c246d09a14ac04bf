/**
 * `berth snapshots …`: ctr's snapshot commands, with ctr's output formats (containerd 1.6
 * cmd/ctr/commands/snapshots), so scripts written for ctr read Berth the same way.
 */
import type { Command } from "commander";
import type { Client } from "@connectrpc/connect";
import { type Info, Kind, Snapshots } from "../../gen/services/snapshots/v1/snapshots_pb.ts";
import type { Mount } from "../../gen/types/mount_pb.ts";
import { defaultSnapshotter, withClient } from "../globals.ts";
import { formatBytes } from "../progress.ts";
import { formatGoTime, printTable } from "../table.ts";

export { defaultSnapshotter };

const KIND_NAMES: Record<number, string> = {
  [Kind.VIEW]: "View",
  [Kind.ACTIVE]: "Active",
  [Kind.COMMITTED]: "Committed",
};

/** ctr's printMounts: one `mount` command line per mount. */
export function mountCommands(target: string, mounts: readonly Mount[]): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${target} -o ${m.options.join(",")}\n`).join("");
}

/** The mounts as ctr's --mounts prints them (Go's JSON of mount.Mount, indented). */
function mountsJson(mounts: readonly Mount[]): string {
  return JSON.stringify(mounts.map((m) => ({ Type: m.type, Source: m.source, Options: m.options })), null, 4);
}

/** ctr's `snapshots info`: Go's JSON of snapshots.Info. */
function infoJson(i: Info): string {
  return JSON.stringify(
    {
      Kind: KIND_NAMES[i.kind] ?? "Unknown",
      Name: i.name,
      ...(i.parent ? { Parent: i.parent } : {}),
      ...(Object.keys(i.labels).length ? { Labels: i.labels } : {}),
      Created: formatGoTime(i.createdAt),
      Updated: formatGoTime(i.updatedAt),
    },
    null,
    4,
  );
}

/** ctr's tree: roots in walk order, children indented under their parent with `\_`. */
export function formatTree(infos: readonly Pick<Info, "name" | "parent">[]): string {
  const nodes: { name: string; parent: string; children: string[] }[] = [];
  const index = new Map<string, { name: string; parent: string; children: string[] }>();
  const add = (name: string, parent: string) => {
    let n = index.get(name);
    if (!n) {
      n = { name, parent, children: [] };
      nodes.push(n);
      index.set(name, n);
    } else {
      n.parent = parent;
    }
    if (parent !== "") {
      if (!index.has(parent)) add(parent, "");
      index.get(parent)!.children.push(name);
    }
  };
  for (const i of infos) add(i.name, i.parent);
  let out = "";
  const print = (name: string, level: number) => {
    out += `${"  ".repeat(level)}${level > 0 ? "\\_" : ""} ${name}\n`;
    for (const c of index.get(name)!.children) print(c, level + 1);
  };
  for (const n of nodes) if (n.parent === "") print(n.name, 0);
  return out;
}

async function walk(sn: Client<typeof Snapshots>, snapshotter: string): Promise<Info[]> {
  const out: Info[] = [];
  for await (const res of sn.list({ snapshotter })) out.push(...res.info);
  return out;
}

type Opts = { snapshotter: string };

function write(s: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(s));
}

export function snapshotsCommand(program: Command): void {
  const group = program.command("snapshots").alias("snapshot").description("Manage snapshots")
    .option(
      "-s, --snapshotter <name>",
      "snapshotter name (env CONTAINERD_SNAPSHOTTER)",
      defaultSnapshotter(),
    );
  const snapshotterOf = (cmd: Command) => (cmd.parent!.opts<Opts>()).snapshotter;
  const run = (cmd: Command, fn: (sn: Client<typeof Snapshots>, snapshotter: string) => Promise<void>) =>
    withClient(cmd, (client) => fn(client.service(Snapshots), snapshotterOf(cmd)));

  group.command("ls").alias("list").description("List snapshots").action(async (_o, cmd: Command) => {
    await run(cmd, async (sn, snapshotter) => {
      const infos = await walk(sn, snapshotter);
      printTable([
        ["KEY", "PARENT", "KIND"],
        ...infos.map((i) => [i.name, i.parent, KIND_NAMES[i.kind] ?? ""]),
      ], 1);
    });
  });

  group.command("info").description("Get info about a snapshot").argument("<key>")
    .action(async (key: string, _o, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => {
        const { info } = await sn.stat({ snapshotter, key });
        if (info) console.log(infoJson(info));
      });
    });

  group.command("tree").description("Display tree view of snapshot branches").action(
    async (_o, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => write(formatTree(await walk(sn, snapshotter))));
    },
  );

  group.command("usage").description("Usage of snapshots").argument("[keys...]")
    .option("-b", "display size in bytes")
    .action(async (keys: string[], opts: { b?: boolean }, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => {
        const names = keys.length ? keys : (await walk(sn, snapshotter)).map((i) => i.name);
        const rows = [["KEY", "SIZE", "INODES"]];
        for (const key of names) {
          const u = await sn.usage({ snapshotter, key });
          rows.push([key, opts.b ? String(u.size) : formatBytes(Number(u.size)), String(u.inodes)]);
        }
        printTable(rows, 1);
      });
    });

  group.command("mounts").alias("m").alias("mount").description("Print the mount commands of a snapshot")
    .argument("<target>").argument("<key>")
    .action(async (target: string, key: string, _o, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => {
        write(mountCommands(target, (await sn.mounts({ snapshotter, key })).mounts));
      });
    });

  group.command("rm").alias("delete").alias("del").alias("remove").description("Remove snapshots")
    .argument("<keys...>")
    .action(async (keys: string[], _o, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => {
        for (const key of keys) {
          try {
            await sn.remove({ snapshotter, key });
          } catch (err) {
            throw new Error(
              `Cannot remove snapshot "${key}": ${(err as { rawMessage?: string }).rawMessage ?? err}`,
            );
          }
        }
      });
    });

  for (const verb of ["prepare", "view"] as const) {
    group.command(verb).description(
      verb === "prepare"
        ? "Prepare a writable snapshot from a committed snapshot"
        : "Create a read-only snapshot from a committed snapshot",
    ).argument("<key>").argument("[parent]")
      .option("-t, --target <path>", "print the mount commands for this target")
      .option("--mounts", "print the snapshot's mounts as JSON")
      .action(
        async (
          key: string,
          parent: string | undefined,
          opts: { target?: string; mounts?: boolean },
          cmd: Command,
        ) => {
          await run(cmd, async (sn, snapshotter) => {
            // As ctr: a prepared snapshot is a gc root, so it outlives the command.
            const labels: Record<string, string> = verb === "prepare"
              ? { "containerd.io/gc.root": new Date().toISOString().slice(0, 19) + "Z" }
              : {};
            const { mounts } = await sn[verb]({ snapshotter, key, parent: parent ?? "", labels });
            if (opts.target) write(mountCommands(opts.target, mounts));
            if (opts.mounts) console.log(mountsJson(mounts));
          });
        },
      );
  }

  group.command("commit").description("Commit an active snapshot into the provided name")
    .argument("<name>").argument("<active>")
    .action(async (name: string, key: string, _o, cmd: Command) => {
      await run(cmd, async (sn, snapshotter) => {
        const labels = { "containerd.io/gc.root": new Date().toISOString().slice(0, 19) + "Z" };
        await sn.commit({ snapshotter, name, key, labels });
      });
    });
}
