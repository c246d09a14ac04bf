/**
 * `berth compose`'s runtime: the ComposeBackend over the daemon and this host, made of the same pieces
 * as the Docker verbs (containers as `berth create` makes them, started as `berth start` starts them,
 * the network and volume stores, the json-file logs).
 */
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { BerthClient } from "../../client/mod.ts";
import * as oci from "../../oci/mod.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import type { ComposeBackend, ContainerInfo, ExecOptions } from "../../docker/compose/backend.ts";
import { jsonLabel, LABELS, type PortLabel } from "../../docker/labels.ts";
import { logPathOf, readJsonLog } from "../../docker/logs.ts";
import { listContainers, nameOf } from "../../docker/names.ts";
import { createNetwork, inspectNetwork, removeNetwork } from "../../docker/networks.ts";
import type { DockerPaths } from "../../docker/paths.ts";
import { containerStates, describeStatus } from "../../docker/status.ts";
import { createVolume, inspectVolume, removeVolume, volumesInUse } from "../../docker/volumes.ts";
import { pullImage, registryPb } from "../commands/pull.ts";
import { execProcess } from "../commands/tasks.ts";
import { defaultSnapshotter } from "../commands/snapshots.ts";
import { createDockerContainer } from "./create.ts";
import { realHost } from "./host_real.ts";
import { isCode } from "../../client/errors.ts";
import { removeContainer, startContainer, stopContainer } from "./lifecycle.ts";

const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/** The backend for `paths` over `client`. Pulls go over plain HTTP when BERTH_PLAIN_HTTP is set. */
export function makeComposeBackend(paths: DockerPaths, client: BerthClient): ComposeBackend {
  const snapshotter = defaultSnapshotter();
  const plainHttp = !!Deno.env.get("BERTH_PLAIN_HTTP");
  const get = async (id: string) => {
    const { container } = await client.containers.get({ id });
    if (!container) throw new Error(`No such container: ${id}`);
    return container;
  };
  return {
    async imageExists(ref) {
      try {
        await client.images.get({ name: ref });
        return true;
      } catch (err) {
        if (isCode(err, Code.NotFound)) return false;
        throw err;
      }
    },
    async pullImage(ref) {
      await pullImage(client, {
        reference: ref,
        registry: registryPb({ plainHttp }),
        snapshotter,
        unpack: true,
      });
    },
    async networkExists(name) {
      return await inspectNetwork(paths, name).then(() => true, () => false);
    },
    async createNetwork(name, options) {
      await createNetwork(paths, name, { labels: options.labels, subnet: options.subnet });
    },
    async removeNetwork(name) {
      await removeNetwork(paths, name);
    },
    async volumeExists(name) {
      return await inspectVolume(paths, name).then(() => true, () => false);
    },
    async createVolume(name, options) {
      await createVolume(paths, name, options.labels);
    },
    async removeVolume(name) {
      const inUse = volumesInUse(await listContainers(client));
      await removeVolume(paths, name, { inUseBy: inUse });
    },
    async listContainers(labels) {
      const filters = Object.entries(labels).map(([k, v]) => `labels."${k}"==${v}`);
      const found = (await listContainers(client, filters.length ? [filters.join(",")] : []))
        .filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v));
      const states = await containerStates(client, found);
      return found.map((c): ContainerInfo => {
        const state = states.get(c.id);
        return {
          id: c.id,
          name: nameOf(c),
          image: c.image,
          labels: c.labels,
          running: state?.running ?? false,
          exitCode: state?.status === "exited" ? state.exitCode : undefined,
          status: state ? describeStatus(state) : "Created",
          ports: jsonLabel<PortLabel[]>(c.labels, LABELS.ports, []).map((p) => ({
            hostIP: p.HostIP,
            hostPort: p.HostPort,
            containerPort: p.ContainerPort,
            protocol: p.Protocol === "udp" ? "udp" : "tcp",
          })),
        };
      });
    },
    async create(options) {
      const made = await createDockerContainer({ client, paths, snapshotter, plainHttp }, options);
      return made.id;
    },
    async start(id) {
      await startContainer(client, await get(id));
    },
    async stop(id, timeoutS) {
      await stopContainer(client, await get(id), timeoutS);
    },
    async remove(id, options) {
      await removeContainer(client, paths, realHost, await get(id), {
        force: true,
        volumes: options.volumes,
      });
    },
    async exec(id, argv, options) {
      return options.quiet
        ? await quietExec(client, await get(id), argv, options)
        : await execProcess(client, id, [...argv], {
          execId: `exec-${crypto.randomUUID().slice(0, 8)}`,
          tty: options.tty,
          user: options.user,
          cwd: options.workingDir,
          env: options.env ? [...options.env] : undefined,
        });
    },
    async logs(containers, options, write) {
      await Promise.all(containers.map(async (c) => {
        const record = await get(c.id);
        const path = logPathOf(record);
        if (!path) return;
        const ctl = new AbortController();
        options.signal?.addEventListener("abort", () => ctl.abort(), { once: true });
        // A follow ends with the container, like `berth logs -f`, or with the caller's signal.
        const watcher = options.follow ? watchStopped(client, c.id, ctl) : undefined;
        try {
          for await (
            const e of readJsonLog(path, { tail: options.tail, follow: options.follow, signal: ctl.signal })
          ) {
            const text = e.log.endsWith("\n") ? e.log.slice(0, -1) : e.log;
            write({
              container: c.name,
              stream: e.stream,
              text,
              ...(options.timestamps ? { time: e.time } : {}),
            });
          }
        } finally {
          ctl.abort();
          await watcher;
        }
      }));
    },
  };
}

/** Aborts `ctl` once the container's task is gone or stopped; a daemon that is down does not. */
async function watchStopped(client: BerthClient, id: string, ctl: AbortController): Promise<void> {
  while (!ctl.signal.aborted) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      const { process: p } = await client.tasks.get({ containerId: id });
      if (!p || p.status === Status.STOPPED) {
        await new Promise((r) => setTimeout(r, 300));
        ctl.abort();
      }
    } catch (err) {
      if (isCode(err, Code.NotFound)) ctl.abort();
    }
  }
}

/** A process with no stdio (a health check): its exit code; killed when the signal aborts. */
async function quietExec(
  client: BerthClient,
  c: { id: string; spec?: { value: Uint8Array } },
  argv: readonly string[],
  options: ExecOptions,
): Promise<number> {
  const spec = c.spec?.value.length ? oci.decodeSpec(c.spec.value) : undefined;
  const process = { ...(spec?.process ?? {}), terminal: false, args: [...argv] } as oci.Process;
  if (options.workingDir) process.cwd = options.workingDir;
  if (options.env?.length) process.env = oci.mergeEnv(process.env ?? [], options.env);
  const execId = `health-${crypto.randomUUID().slice(0, 8)}`;
  await client.tasks.exec({
    containerId: c.id,
    execId,
    terminal: false,
    spec: create(AnySchema, {
      typeUrl: PROCESS_TYPE_URL,
      value: new TextEncoder().encode(JSON.stringify(process)),
    }),
  });
  const waiting = client.tasks.wait({ containerId: c.id, execId }, { timeoutMs: 0 });
  waiting.catch(() => {});
  const onAbort = () => client.tasks.kill({ containerId: c.id, execId, signal: 9 }).catch(() => {});
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await client.tasks.start({ containerId: c.id, execId });
    return (await waiting).exitStatus;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await client.tasks.deleteProcess({ containerId: c.id, execId }).catch(() => {});
  }
}
