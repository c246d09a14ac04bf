/**
 * A container's Docker state (created, running, paused, exited) from its record and its task, and the
 * texts `docker ps` shows for it: "Up 3 seconds", "Exited (137) 5 seconds ago", "0.0.0.0:8080->80/tcp".
 * The CLI runs on the host, so a running task's start time is read from /proc.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { BerthClient } from "../client/mod.ts";
import type { Container } from "../gen/services/containers/v1/containers_pb.ts";
import { type Process, Status } from "../gen/types/task/task_pb.ts";
import { jsonLabel, LABELS, type PortLabel } from "./labels.ts";

export type DockerStatus = "created" | "running" | "paused" | "exited";

export interface ContainerState {
  readonly status: DockerStatus;
  readonly running: boolean;
  readonly paused: boolean;
  /** The task's pid on the host; 0 without a live task. */
  readonly pid: number;
  readonly exitCode: number;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
}

/** The Docker state of `container`: its task's when it has one, else what `stop`/`rm` recorded. */
export async function containerState(
  client: BerthClient,
  container: Pick<Container, "id" | "labels">,
): Promise<ContainerState> {
  let task: Process | undefined;
  try {
    task = (await client.tasks.get({ containerId: container.id })).process;
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
  }
  return stateOf(container.labels, task, processStartTime);
}

/** The states of many containers from one Tasks.List call, by container id. */
export async function containerStates(
  client: BerthClient,
  containers: readonly Pick<Container, "id" | "labels">[],
): Promise<Map<string, ContainerState>> {
  const { tasks } = await client.tasks.list({});
  const byId = new Map(tasks.map((t) => [t.id, t]));
  return new Map(containers.map((c) => [c.id, stateOf(c.labels, byId.get(c.id))]));
}

/** The state from a record's labels and its task (if any); `startTime` reads a pid's start (tests fake it). */
export function stateOf(
  labels: Readonly<Record<string, string>>,
  task: Pick<Process, "pid" | "status" | "exitStatus" | "exitedAt"> | undefined,
  startTime: (pid: number) => Date | undefined = processStartTime,
): ContainerState {
  if (!task || task.status === Status.CREATED) {
    const recorded = labels[LABELS.exitCode];
    if (!task && recorded !== undefined && recorded !== "" && Number.isFinite(Number(recorded))) {
      return {
        status: "exited",
        running: false,
        paused: false,
        pid: 0,
        exitCode: Number(recorded),
        finishedAt: parseTime(labels[LABELS.finishedAt]),
      };
    }
    return { status: "created", running: false, paused: false, pid: task?.pid ?? 0, exitCode: 0 };
  }
  if (task.status === Status.RUNNING || task.status === Status.PAUSED || task.status === Status.PAUSING) {
    const paused = task.status !== Status.RUNNING;
    return {
      status: paused ? "paused" : "running",
      running: true,
      paused,
      pid: task.pid,
      exitCode: 0,
      startedAt: task.pid > 0 ? startTime(task.pid) : undefined,
    };
  }
  // STOPPED (or UNKNOWN: a task whose shim is gone): exited with what the task recorded.
  const finishedAt = task.exitedAt && task.exitedAt.seconds > 0n ? timestampDate(task.exitedAt) : undefined;
  return { status: "exited", running: false, paused: false, pid: 0, exitCode: task.exitStatus, finishedAt };
}

function parseTime(text: string | undefined): Date | undefined {
  if (!text) return undefined;
  const d = new Date(/^\d+$/.test(text) ? Number(text) * 1000 : text);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Linux's USER_HZ: the unit of /proc/<pid>/stat's times (100 on every architecture Linux ships). */
export const CLOCK_TICKS = 100;

/** The fields of /proc/<pid>/stat after the command (whose name may hold spaces and parentheses). */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).trim().split(/\s+/);
}

/** The host's boot time, from /proc/stat's btime. */
export function bootTime(): Date {
  const m = /^btime\s+(\d+)$/m.exec(Deno.readTextFileSync("/proc/stat"));
  return new Date(Number(m?.[1] ?? 0) * 1000);
}

/** When process `pid` started, from /proc (undefined when it is gone). */
export function processStartTime(pid: number): Date | undefined {
  try {
    // Field 22 of stat: start time in clock ticks after boot; index 19 after the command.
    const ticks = Number(statFields(Deno.readTextFileSync(`/proc/${pid}/stat`))[19]);
    return new Date(bootTime().getTime() + (ticks * 1000) / CLOCK_TICKS);
  } catch {
    return undefined;
  }
}

/** Docker's humanized duration (go-units HumanDuration): "Less than a second", "5 seconds", "About an hour". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** "5 seconds ago", as `docker ps` shows CREATED. */
export function timeAgo(then: Date, now: Date = new Date()): string {
  return `${humanDuration(now.getTime() - then.getTime())} ago`;
}

/** Docker's STATUS column: "Up 3 seconds", "Up 2 minutes (Paused)", "Exited (137) 5 seconds ago", "Created". */
export function describeStatus(state: ContainerState, now: Date = new Date()): string {
  if (state.running) {
    const up = state.startedAt ? `Up ${humanDuration(now.getTime() - state.startedAt.getTime())}` : "Up";
    return state.paused ? `${up} (Paused)` : up;
  }
  if (state.status === "exited") {
    const ago = state.finishedAt ? ` ${timeAgo(state.finishedAt, now)}` : "";
    return `Exited (${state.exitCode})${ago}`;
  }
  return "Created";
}

/** The published ports of a container's `nerdctl/ports` label. */
export function portsOf(labels: Readonly<Record<string, string>>): PortLabel[] {
  const ports = jsonLabel<unknown>(labels, LABELS.ports, []);
  if (!Array.isArray(ports)) return [];
  return ports.filter((p): p is PortLabel =>
    typeof p === "object" && p !== null && Number.isInteger(p.ContainerPort) && Number.isInteger(p.HostPort)
  ).map((p) => ({
    HostPort: p.HostPort,
    ContainerPort: p.ContainerPort,
    Protocol: (p.Protocol || "tcp").toLowerCase(),
    HostIP: p.HostIP || "0.0.0.0",
  }));
}

/** `host:port` as Docker writes it, brackets around an IPv6 address. */
export function hostAddress(p: Pick<PortLabel, "HostIP" | "HostPort">): string {
  return `${p.HostIP.includes(":") ? `[${p.HostIP}]` : p.HostIP}:${p.HostPort}`;
}

/** Docker's PORTS column: "0.0.0.0:18080->80/tcp, 0.0.0.0:5353->53/udp". */
export function formatPorts(labels: Readonly<Record<string, string>>): string {
  return portsOf(labels).map((p) => `${hostAddress(p)}->${p.ContainerPort}/${p.Protocol}`).join(", ");
}
