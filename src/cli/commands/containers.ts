/** `berth containers …` as ctr's: create, ls, info, rm, label. */
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import { decodeSpec } from "../../oci/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { namespaceOf, withClient } from "../context.ts";
import { formatGoTime, printTable } from "../table.ts";
import { type ContainerFlags, containerOptions, deleteContainer, newContainer } from "./run.ts";
import { deleteTask } from "../task_io.ts";

/** A gogo Any in JSON as ctr prints it: type_url, and value in base64 when not empty. */
function goAny(a: Any | undefined): unknown {
  if (!a) return null;
  const out: Record<string, string> = { type_url: a.typeUrl };
  if (a.value.length) out.value = btoa(String.fromCharCode(...a.value));
  return out;
}

/** ctr's `containers info` JSON: containerd's containers.Container with the spec decoded. */
export function containerInfoJson(c: Container, options: { specOnly?: boolean } = {}): string {
  const spec = c.spec?.value.length ? decodeSpec(c.spec.value) : undefined;
  if (options.specOnly) return JSON.stringify(spec ?? null, null, 4);
  const extensions = Object.keys(c.extensions).length
    ? Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, goAny(v)]))
    : null;
  const info: Record<string, unknown> = {
    ID: c.id,
    Labels: Object.keys(c.labels).length ? c.labels : null,
    Image: c.image,
    Runtime: { Name: c.runtime?.name ?? "", Options: goAny(c.runtime?.options) },
    SnapshotKey: c.snapshotKey,
    Snapshotter: c.snapshotter,
    CreatedAt: formatGoTime(c.createdAt),
    UpdatedAt: formatGoTime(c.updatedAt),
    Extensions: extensions,
  };
  if (spec) info.Spec = spec;
  return JSON.stringify(info, null, 4);
}

const describe = (err: unknown) =>
  err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);

/** ctr's deleteContainer: a stopped or created task is deleted first; a running one refuses. */
async function removeContainer(client: BerthClient, id: string, keepSnapshot: boolean): Promise<void> {
  let status: Status | undefined;
  try {
    status = (await client.tasks.get({ containerId: id })).process?.status;
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
  }
  if (status !== undefined) {
    if (status !== Status.STOPPED && status !== Status.CREATED) {
      throw new Error(`Cannot delete a non stopped container: its task is ${Status[status]}`);
    }
    await deleteTask(client, id);
  }
  await deleteContainer(client, id, { keepSnapshot });
}

export function containersCommand(program: Command): void {
  const containers = program.command("containers").alias("c").alias("container")
    .description("Manage containers").enablePositionalOptions();

  containerOptions(containers.command("create").description("Create a container"), { run: false })
    .action(async (ref: string, id: string, args: string[], flags: ContainerFlags, cmd: Command) => {
      await withClient(cmd, async (client) => {
        await newContainer(client, ref, { id, args, flags, namespace: namespaceOf(cmd) });
      });
    });

  containers.command("list").alias("ls").description("List containers")
    .option("-q, --quiet", "print only the container id")
    .argument("[filters...]")
    .action(async (filters: string[], opts: { quiet?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { containers: list } = await client.containers.list({ filters });
        if (opts.quiet) return list.forEach((c) => console.log(c.id));
        printTable([
          ["CONTAINER", "IMAGE", "RUNTIME"],
          ...list.map((c) => [c.id, c.image || "-", c.runtime?.name ?? ""]),
        ]);
      });
    });

  containers.command("info").description("Get info about a container").argument("<id>")
    .option("--spec", "only display the spec")
    .action(async (id: string, opts: { spec?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { container } = await client.containers.get({ id });
        if (!container) throw new Error(`Container "${id}" not found`);
        console.log(containerInfoJson(container, { specOnly: opts.spec }));
      });
    });

  containers.command("delete").alias("rm").alias("del").alias("remove")
    .description("Delete one or more existing containers")
    .argument("<ids...>")
    .option("--keep-snapshot", "do not clean up snapshot with container")
    .action(async (ids: string[], opts: { keepSnapshot?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        let failed = 0;
        for (const id of ids) {
          try {
            await removeContainer(client, id, !!opts.keepSnapshot);
          } catch (err) {
            console.error(`berth: Cannot delete container "${id}": ${describe(err)}`);
            failed++;
          }
        }
        if (failed) throw new Error(`${failed} of ${ids.length} containers were not deleted`);
      });
    });

  containers.command("label").description("Set and clear labels for a container")
    .argument("<id>").argument("[labels...]")
    .action(async (id: string, labels: string[], _opts: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const set: Record<string, string> = {};
        for (const l of labels) {
          const i = l.indexOf("=");
          // ctr's LabelArgs: a bare key means "true"; `key=` (empty) clears it.
          set[i < 0 ? l : l.slice(0, i)] = i < 0 ? "true" : l.slice(i + 1);
        }
        const paths = Object.keys(set).map((k) => `labels.${k}`);
        const { container } = await client.containers.update({
          container: { id, labels: set },
          updateMask: { paths },
        });
        console.log(Object.entries(container?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(","));
      });
    });
}
