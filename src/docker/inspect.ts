/**
 * `docker inspect`'s document of a container, from what Berth has: the record (labels, image, times),
 * the OCI spec (process, resources, mounts), the task's state, and the networks' addresses from the hosts
 * store. Docker's keys and shapes where they apply, so scripts reading `.State.Status` or
 * `.NetworkSettings.IPAddress` work unchanged.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Container } from "../gen/services/containers/v1/containers_pb.ts";
import type { Mount, Spec } from "../oci/mod.ts";
import { jsonLabel, LABELS } from "./labels.ts";
import { nameOf } from "./names.ts";
import { type ContainerState, portsOf } from "./status.ts";

/** Go's zero time.Time in JSON: what docker shows for a time that never happened. */
export const GO_ZERO_TIME = "0001-01-01T00:00:00Z";

/** RFC 3339 with nanoseconds as Go marshals a time.Time (trailing zeros trimmed). */
export function rfc3339Nano(d: Date | undefined, nanos?: number): string {
  if (!d) return GO_ZERO_TIME;
  const base = d.toISOString().slice(0, 19);
  const frac = String(nanos ?? d.getUTCMilliseconds() * 1e6).padStart(9, "0").replace(/0+$/, "");
  return `${base}${frac ? `.${frac}` : ""}Z`;
}

/** A network the container is on, with its address there. */
export interface NetworkAddress {
  readonly ip: string;
  readonly prefixLen?: number;
  readonly gateway?: string;
}

export interface InspectSources {
  readonly spec?: Spec;
  readonly state: ContainerState;
  /** Network name → the container's address (the hosts store's meta.json). */
  readonly networks?: Readonly<Record<string, NetworkAddress>>;
  /** The container's files that exist (docker leaves the others empty). */
  readonly files?: {
    readonly resolvConf?: string;
    readonly hostname?: string;
    readonly hosts?: string;
    readonly log?: string;
  };
  /** `<dataStore>/volumes/<ns>`: a bind from below it is a named volume. */
  readonly volumesDir?: string;
}

/** The mounts nerdctl adds for every container; not the user's, so not shown. */
const ETC_FILES = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];

interface MountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** Docker's Mounts: the `nerdctl/mounts` label when the container has one, else the spec's binds. */
export function mountPoints(
  labels: Readonly<Record<string, string>>,
  spec?: Spec,
  volumesDir?: string,
): MountPoint[] {
  const recorded = jsonLabel<unknown>(labels, LABELS.mounts, undefined);
  if (Array.isArray(recorded)) {
    return recorded.filter((m) => typeof m === "object" && m !== null).map((m) => ({
      Type: String(m.Type ?? "bind"),
      ...(m.Name ? { Name: String(m.Name) } : {}),
      Source: String(m.Source ?? ""),
      Destination: String(m.Destination ?? ""),
      Mode: String(m.Mode ?? ""),
      RW: m.RW !== false,
      Propagation: String(m.Propagation ?? ""),
    }));
  }
  const binds = (spec?.mounts ?? []).filter((m: Mount) =>
    (m.type === "bind" || m.options?.includes("bind") || m.options?.includes("rbind")) &&
    !ETC_FILES.includes(m.destination)
  );
  return binds.map((m) => {
    const source = m.source ?? "";
    const volume = volumesDir && source.startsWith(`${volumesDir}/`)
      ? source.slice(volumesDir.length + 1).split("/")[0]
      : undefined;
    const propagation = m.options?.find((o) => /^r?(shared|slave|private)$/.test(o)) ?? "";
    return {
      Type: volume ? "volume" : "bind",
      ...(volume ? { Name: volume } : {}),
      Source: source,
      Destination: m.destination,
      Mode: "",
      RW: !m.options?.includes("ro"),
      Propagation: propagation,
    };
  });
}

/** containerd's restart policy label ("always", "on-failure:3", "unless-stopped") as docker's. */
export function restartPolicy(label: string | undefined): { Name: string; MaximumRetryCount: number } {
  if (!label) return { Name: "no", MaximumRetryCount: 0 };
  const [name, count] = label.split(":");
  return { Name: name || "no", MaximumRetryCount: Number(count ?? 0) || 0 };
}

/** The network mode: the first network of the label; for ctr's containers, host or none from the spec. */
function networkMode(labels: Readonly<Record<string, string>>, spec?: Spec): string {
  const networks = jsonLabel<unknown>(labels, LABELS.networks, []);
  if (Array.isArray(networks) && typeof networks[0] === "string") return networks[0];
  const ownNetns = spec?.linux?.namespaces?.some((n) => n.type === "network" && !n.path);
  return spec && !ownNetns ? "host" : "none";
}

function userOf(spec?: Spec): string {
  const u = spec?.process?.user;
  if (!u) return "";
  if (u.username) return u.username;
  return u.uid === 0 && u.gid === 0 ? "" : `${u.uid}:${u.gid}`;
}

/** The `docker inspect` document of a container. */
export function inspectContainer(
  container: Pick<Container, "id" | "image" | "labels" | "createdAt" | "snapshotter">,
  sources: InspectSources,
): Record<string, unknown> {
  const { spec, state } = sources;
  const labels = container.labels;
  const args = spec?.process?.args ?? [];
  const resources = spec?.linux?.resources;
  const cpu = resources?.cpu;
  const ports = portsOf(labels);
  const portMap: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) {
    (portMap[`${p.ContainerPort}/${p.Protocol}`] ??= []).push({
      HostIp: p.HostIP,
      HostPort: String(p.HostPort),
    });
  }
  const networks: Record<string, unknown> = {};
  for (const [name, a] of Object.entries(sources.networks ?? {})) {
    networks[name] = {
      IPAddress: a.ip,
      IPPrefixLen: a.prefixLen ?? 0,
      Gateway: a.gateway ?? "",
      NetworkID: "",
      MacAddress: "",
    };
  }
  const firstNetwork = Object.values(sources.networks ?? {})[0];
  const created = container.createdAt;
  return {
    Id: container.id,
    Created: created ? rfc3339Nano(timestampDate(created), created.nanos) : GO_ZERO_TIME,
    Path: args[0] ?? "",
    Args: args.slice(1),
    State: {
      Status: state.status,
      Running: state.running,
      Paused: state.paused,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: state.pid,
      ExitCode: state.exitCode,
      Error: "",
      StartedAt: rfc3339Nano(state.startedAt),
      FinishedAt: rfc3339Nano(state.finishedAt),
    },
    Image: container.image,
    ResolvConfPath: sources.files?.resolvConf ?? "",
    HostnamePath: sources.files?.hostname ?? "",
    HostsPath: sources.files?.hosts ?? "",
    LogPath: sources.files?.log ?? "",
    Name: `/${nameOf(container)}`,
    RestartCount: Number(labels["containerd.io/restart.count"] ?? 0) || 0,
    Driver: container.snapshotter,
    Platform: "linux",
    HostConfig: {
      RestartPolicy: restartPolicy(labels[LABELS.restartPolicy]),
      PortBindings: portMap,
      NetworkMode: networkMode(labels, spec),
      Memory: resources?.memory?.limit && resources.memory.limit > 0 ? resources.memory.limit : 0,
      NanoCpus: cpu?.quota && cpu.quota > 0 && cpu.period ? Math.round((cpu.quota * 1e9) / cpu.period) : 0,
      PidsLimit: resources?.pids?.limit && resources.pids.limit > 0 ? resources.pids.limit : null,
      ReadonlyRootfs: !!spec?.root?.readonly,
    },
    Mounts: mountPoints(labels, spec, sources.volumesDir),
    Config: {
      Hostname: labels[LABELS.hostname] || spec?.hostname || "",
      User: userOf(spec),
      Tty: !!spec?.process?.terminal,
      Env: spec?.process?.env ?? [],
      Cmd: args,
      Image: container.image,
      WorkingDir: spec?.process?.cwd ?? "",
      Labels: labels,
      StopSignal: labels[LABELS.stopSignal] ?? "",
    },
    NetworkSettings: {
      Ports: portMap,
      IPAddress: firstNetwork?.ip ?? "",
      IPPrefixLen: firstNetwork?.prefixLen ?? 0,
      Gateway: firstNetwork?.gateway ?? "",
      Networks: networks,
    },
  };
}
