/**
 * Makes a container the Docker way (nerdctl's `create`): a generated id and name, the image pulled when
 * missing, Docker's entrypoint/command rules, a network namespace wired by the OCI hook, /etc/hosts,
 * /etc/resolv.conf and /etc/hostname from the container's own files, named and anonymous volumes (copied
 * up from the image at first use), a json-file log, and the labels nerdctl and containerd's restart
 * monitor read. Whatever a failed create made on the way is removed again.
 */
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { BerthClient } from "../../client/mod.ts";
import { withLease } from "../../client/stores.ts";
import * as oci from "../../oci/mod.ts";
import { invalidArgument } from "../../base/errors.ts";
import { LABELS, type PortLabel } from "../../docker/labels.ts";
import { checkName, checkNameFree, defaultName, listContainers, newContainerId } from "../../docker/names.ts";
import { containerDir, type DockerPaths } from "../../docker/paths.ts";
import type { PortMapping, RunOptions, VolumeMount } from "../../docker/run_options.ts";
import { restartLabel } from "../../docker/flags.ts";
import { resolveImage } from "../commands/run.ts";
import { userDbOf, withSnapshotMounted } from "../host/mount.ts";
import type { DockerHost } from "./host.ts";
import { realHost } from "./host_real.ts";

export interface CreateContext {
  readonly client: BerthClient;
  readonly paths: DockerPaths;
  readonly snapshotter: string;
  readonly runtime?: string;
  /** Pull a missing image over plain HTTP. */
  readonly plainHttp?: boolean;
  /** Private key files for an encrypted image (berth run --key). */
  readonly keys?: readonly string[];
  /** The host-side pieces (networks, hosts files, volumes); the real ones by default. */
  readonly host?: DockerHost;
}

export interface Created {
  readonly id: string;
  readonly name: string;
  /** The json-file log's URI (stdout and stderr of a detached task). */
  readonly logUri: string;
  readonly logPath: string;
  readonly anonymousVolumes: readonly string[];
}

/** Log rotation as nerdctl's json-file defaults: unbounded unless asked. */
export interface LogOptions {
  readonly maxSize?: number;
  readonly maxFile?: number;
}

const BUILTIN_NETWORKS = ["host", "none"];

/** The networks a container joins: default bridge; host and none stand alone. */
export function networksOf(opts: RunOptions): string[] {
  const nets = opts.networks?.length ? [...new Set(opts.networks)] : ["bridge"];
  for (const special of BUILTIN_NETWORKS) {
    if (nets.includes(special) && nets.length > 1) {
      throw invalidArgument(`--network ${special} cannot be combined with other networks`);
    }
  }
  return nets;
}

/** The process args by Docker's rules: --entrypoint replaces ENTRYPOINT (and drops CMD), args replace CMD. */
export function processArgs(config: oci.ImageConfig, opts: RunOptions): string[] {
  const entrypoint = opts.entrypoint !== undefined ? [...opts.entrypoint] : [...(config.Entrypoint ?? [])];
  const cmd = opts.command?.length
    ? [...opts.command]
    : opts.entrypoint !== undefined
    ? []
    : [...(config.Cmd ?? [])];
  return [...entrypoint, ...cmd];
}

/** The log URI Berth's shim writes as a json-file (see src/shim): no process per container. */
export function jsonLogUri(path: string, log: LogOptions = {}): string {
  const q = new URLSearchParams({ _BERTH_INTERNAL_LOGGING: "json-file", path });
  if (log.maxSize) q.set("max-size", String(log.maxSize));
  if (log.maxFile) q.set("max-file", String(log.maxFile));
  return `binary://${Deno.execPath()}?${q}`;
}

/** Picks free host ports for mappings that asked for any (0), and refuses ports already taken. */
async function allocatePorts(
  client: BerthClient,
  ports: readonly PortMapping[],
  host: DockerHost,
): Promise<PortMapping[]> {
  if (ports.length === 0) return [];
  const taken = new Map<string, string>();
  for (const c of await listContainers(client)) {
    const raw = c.labels[LABELS.ports];
    if (!raw) continue;
    let list: PortLabel[] = [];
    try {
      list = JSON.parse(raw);
    } catch { /* a label we cannot read holds nothing */ }
    for (const p of list) {
      taken.set(`${p.Protocol}/${p.HostPort}`, c.labels[LABELS.name] || c.id.slice(0, 12));
    }
  }
  const out: PortMapping[] = [];
  for (const p of ports) {
    let hostPort = p.hostPort;
    if (hostPort === 0) hostPort = host.freePort(p.hostIP, p.protocol);
    const owner = taken.get(`${p.protocol}/${hostPort}`);
    if (owner) {
      throw invalidArgument(
        `Port ${hostPort}/${p.protocol} is already published by container ${owner}: choose another host port`,
      );
    }
    if (!host.portFree(p.hostIP, hostPort, p.protocol)) {
      throw invalidArgument(
        `Port ${p.hostIP}:${hostPort}/${p.protocol} is already in use on this host: choose another host port`,
      );
    }
    taken.set(`${p.protocol}/${hostPort}`, "this container");
    out.push({ ...p, hostPort });
  }
  return out;
}

interface PlannedVolume {
  readonly mount: VolumeMount;
  /** The host folder mounted. */
  readonly source: string;
  /** A volume made by this create (removed again if it fails). */
  readonly fresh: boolean;
  readonly name?: string;
  /** Copy the image's content at the target into it (a new, empty volume). */
  readonly copyUp: boolean;
}

/** Creates container for `opts`; nothing is left behind when it fails. */
export async function createDockerContainer(
  ctx: CreateContext,
  opts: RunOptions,
  log: LogOptions = {},
): Promise<Created> {
  const { client, paths } = ctx;
  const host = ctx.host ?? realHost;
  const id = newContainerId();
  const name = opts.name ?? defaultName(opts.image, id);
  checkName(name);
  const networks = networksOf(opts);
  const userNetworks = networks.filter((n) => !BUILTIN_NETWORKS.includes(n));
  if (opts.ports?.length && userNetworks.length === 0) {
    throw invalidArgument(`Ports cannot be published with --network ${networks[0]}`);
  }
  // Independent checks side by side (daemon calls and the conf folder); the first failure in this order wins.
  const checked = await Promise.allSettled([
    checkNameFree(client, name),
    Promise.all(userNetworks.map((net) => host.checkNetwork(paths, net))),
    allocatePorts(client, opts.ports ?? [], host),
  ]);
  const failed = checked.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  const allocated = checked[2];
  if (allocated.status === "rejected") throw allocated.reason;
  const ports = allocated.value;
  const image = await resolveImage(client, opts.image, {
    snapshotter: ctx.snapshotter,
    plainHttp: ctx.plainHttp,
    key: ctx.keys ? [...ctx.keys] : undefined,
  });
  const hostname = opts.hostname ?? (networks[0] === "host" ? Deno.hostname() : id.slice(0, 12));
  const dir = containerDir(paths, id);
  const logPath = `${dir}/${id}-json.log`;
  const logUri = jsonLogUri(logPath, log);
  const undo: (() => Promise<void>)[] = [];
  const rollback = async () => {
    for (const step of undo.reverse()) await step().catch(() => {});
  };
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    undo.push(() => Deno.remove(dir, { recursive: true }));
    // The volumes: named ones made when missing, anonymous ones (flags and the image's VOLUME) made new.
    const mounts = [...(opts.volumes ?? [])];
    for (const target of Object.keys(image.config.Volumes ?? {})) {
      if (!mounts.some((m) => m.target === target)) {
        mounts.push({ kind: "anonymous", target, readOnly: false });
      }
    }
    const planned: PlannedVolume[] = [];
    for (const m of mounts) {
      if (m.kind === "bind") {
        await Deno.stat(m.source).catch(() => {
          throw invalidArgument(`Bind source ${m.source} does not exist: create it first`);
        });
        planned.push({ mount: m, source: m.source, fresh: false, copyUp: false });
        continue;
      }
      const v = await host.volume(paths, m.kind === "volume" ? m.name : undefined, opts.labels ?? {});
      if (v.created) undo.push(() => host.removeVolume(paths, v.name));
      planned.push({ mount: m, source: v.dataDir, fresh: v.created, name: v.name, copyUp: v.empty });
    }
    const anonymousVolumes = planned.filter((p) => p.mount.kind === "anonymous").map((p) => p.name!);
    // /etc files of the container: its own, bind-mounted (the hook rewrites hosts as peers come and go).
    const etc: oci.Mount[] = [];
    if (networks[0] === "host") {
      // withHostNetwork() mounts the host's hosts and resolv.conf.
    } else {
      const hostsPath = await host.initialHosts(paths, id, hostname, name);
      undo.push(() => host.forgetHosts(paths, id));
      const resolvPath = `${dir}/resolv.conf`;
      // Small files, written synchronously: an async write loads Deno's web streams code (~4 ms of a run).
      Deno.writeTextFileSync(resolvPath, await host.resolvConf(opts.dns));
      etc.push(bind(hostsPath, "/etc/hosts"), bind(resolvPath, "/etc/resolv.conf"));
    }
    const hostnamePath = `${dir}/hostname`;
    Deno.writeTextFileSync(hostnamePath, `${hostname}\n`);
    etc.push(bind(hostnamePath, "/etc/hostname"));

    const annotations: Record<string, string> = {
      [LABELS.name]: name,
      [LABELS.hostname]: hostname,
      [LABELS.namespace]: paths.namespace,
      [LABELS.networks]: JSON.stringify(networks),
      [LABELS.ports]: JSON.stringify(ports.map(portLabel)),
    };
    if (opts.aliases?.length) annotations[LABELS.aliases] = JSON.stringify(opts.aliases);
    const specOpts: oci.SpecOpt[] = [
      oci.withDefaultUnixDevices,
      oci.withImageConfig(image.config),
      oci.withArgs(...processArgs(image.config, opts)),
    ];
    if (opts.env?.length) specOpts.push(oci.withEnv(opts.env));
    specOpts.push(oci.withEnv([`HOSTNAME=${hostname}`]));
    if (opts.workingDir) specOpts.push(oci.withProcessCwd(opts.workingDir));
    if (opts.user) specOpts.push(oci.withUser(opts.user), oci.withAdditionalGids(opts.user));
    if (opts.tty) specOpts.push(oci.withTTY);
    if (opts.readOnly) specOpts.push(oci.withReadonlyRootfs);
    if (networks[0] === "host") specOpts.push(oci.withHostNetwork(hostname));
    specOpts.push(oci.withHostname(hostname));
    specOpts.push(oci.withMounts([
      ...etc,
      ...planned.map((p) => ({
        destination: p.mount.target,
        type: "bind",
        source: p.source,
        options: ["rbind", p.mount.readOnly ? "ro" : "rw"],
      })),
    ]));
    if (opts.memoryBytes) specOpts.push(oci.withMemoryLimit(opts.memoryBytes));
    if (opts.cpus) specOpts.push(oci.withCPUs(opts.cpus));
    if (opts.pidsLimit) specOpts.push(oci.withPidsLimit(opts.pidsLimit));
    specOpts.push(oci.withAnnotations(annotations));
    if (userNetworks.length > 0) {
      const hooks = await host.networkHooks(paths);
      specOpts.push((s) => {
        s.hooks = hooks;
      });
    }
    const restart = opts.restart ?? { name: "no" };
    const labels: Record<string, string> = {
      ...image.labels,
      ...(image.config.Labels ?? {}),
      [LABELS.stopSignal]: image.config.StopSignal || "SIGTERM",
      ...annotations,
      [LABELS.logUri]: logUri,
      [LABELS.stateDir]: dir,
      [LABELS.mounts]: JSON.stringify(planned.map((p) => ({
        Type: p.mount.kind === "bind" ? "bind" : "volume",
        Name: p.name ?? "",
        Source: p.source,
        Destination: p.mount.target,
        RW: !p.mount.readOnly,
      }))),
      [LABELS.anonymousVolumes]: JSON.stringify(anonymousVolumes),
      ...(opts.labels ?? {}),
    };
    if (restart.name !== "no") {
      labels[LABELS.restartStatus] = "running";
      labels[LABELS.restartPolicy] = restartLabel(restart);
      labels[LABELS.restartLogUri] = logUri;
    }
    await withLease(client, async (lease) => {
      const headers = { "containerd-lease": lease };
      const { mounts: rootfs } = await client.snapshots.prepare(
        { snapshotter: ctx.snapshotter, key: id, parent: image.chainId },
        { headers },
      );
      undo.push(() => client.snapshots.remove({ snapshotter: ctx.snapshotter, key: id }).then(() => {}));
      const copies = planned.filter((p) => p.copyUp);
      if (copies.length > 0) {
        await withSnapshotMounted(rootfs, async (root) => {
          for (const p of copies) await host.copyUp(root, p.mount.target, p.source);
        });
      }
      const spec = await oci.generateSpec(
        { namespace: paths.namespace, id, userDb: () => userDbOf(rootfs) },
        specOpts,
      );
      if (!spec.process?.args?.length) {
        throw invalidArgument(
          `No command given and image "${opts.image}" has none: give one after the image`,
        );
      }
      await client.containers.create({
        container: {
          id,
          image: image.name,
          labels,
          runtime: { name: ctx.runtime ?? "io.containerd.runc.v2" },
          spec: create(AnySchema, { typeUrl: oci.SPEC_TYPE_URL, value: oci.encodeSpec(spec) }),
          snapshotter: ctx.snapshotter,
          snapshotKey: id,
        },
      }, { headers });
    });
    return { id, name, logUri, logPath, anonymousVolumes };
  } catch (err) {
    await rollback();
    if (err instanceof ConnectError && err.code === Code.AlreadyExists) {
      throw new Error(`Container ${id} already exists`);
    }
    throw err;
  }
}

function bind(source: string, destination: string): oci.Mount {
  return { destination, type: "bind", source, options: ["rbind", "rw"] };
}

function portLabel(p: PortMapping): PortLabel {
  return { HostPort: p.hostPort, ContainerPort: p.containerPort, Protocol: p.protocol, HostIP: p.hostIP };
}
