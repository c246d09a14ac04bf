import { invalidArgument } from "../../base/errors.ts";

/**
 * The restart monitor's container labels. containerd 1.6 (runtime/restart/restart.go) defines only
 * `status`, `loguri` and the deprecated `logpath`; `policy`, `count` and `explicitly-stopped` arrived
 * in containerd 1.7 (PR #6744), and nerdctl sets them. Without a policy label both behave alike:
 * the task is kept in its desired status.
 */
export const RestartLabels = {
  /** The desired status of the task: "running" or "stopped". */
  status: "containerd.io/restart.status",
  /** The stdout/stderr URI the task is recreated with (`binary://…`, `file://…`, `fifo://…`). */
  logUri: "containerd.io/restart.loguri",
  /** Deprecated in containerd 1.5: a log file path; LogURI wins when both are set. */
  logPath: "containerd.io/restart.logpath",
  /** containerd 1.7: `no`, `always`, `on-failure[:N]`, `unless-stopped` (empty: always). */
  policy: "containerd.io/restart.policy",
  /** containerd 1.7: how many times the monitor started the task again. */
  count: "containerd.io/restart.count",
  /** containerd 1.7: set to "true" by `nerdctl stop`, to "false" by `nerdctl start`. */
  explicitlyStopped: "containerd.io/restart.explicitly-stopped",
} as const;

export type PolicyName = "no" | "always" | "on-failure" | "unless-stopped";

export interface RestartPolicy {
  readonly name: PolicyName;
  /** on-failure's limit; 0 means no limit. */
  readonly maxRetries: number;
}

/** containerd 1.7's restart.NewPolicy: "" is always; only on-failure takes `:N`. */
export function parsePolicy(text: string): RestartPolicy {
  const [name = "", ...rest] = text.split(":");
  switch (name) {
    case "":
    case "no":
    case "always":
    case "unless-stopped":
      if (rest.length > 0) {
        throw invalidArgument(`Restart policy "${name}" does not take a maximum retry count`);
      }
      return { name: name === "" ? "always" : name, maxRetries: 0 };
    case "on-failure": {
      if (rest.length === 0) return { name, maxRetries: 0 };
      const n = rest.join(":");
      if (!/^[+-]?\d+$/.test(n)) {
        throw invalidArgument(`Invalid restart policy "${text}": bad retry count "${n}"`);
      }
      return { name, maxRetries: Number(n) };
    }
    default:
      throw invalidArgument(`Restart policy "${text}" is not supported`);
  }
}

/** As containerd's Policy.String(): the label value. */
export function formatPolicy(p: RestartPolicy): string {
  return p.maxRetries > 0 ? `${p.name}:${p.maxRetries}` : p.name;
}

/** What the monitor sees of a container's task. */
export interface ObservedTask {
  /** "absent": no task (deleted, or its shim died with the host or the daemon). */
  readonly status: "absent" | "created" | "running" | "paused" | "pausing" | "stopped" | "unknown";
  /** Of a stopped task; 0 when unknown (an absent task), as containerd's empty Status. */
  readonly exitStatus: number;
}

export interface DecideOptions {
  /**
   * The first pass after the daemon started. Docker starts an `always` container again when its
   * daemon starts even if it was stopped by hand; `unless-stopped` stays down.
   */
  readonly boot?: boolean;
}

export type Decision =
  | { readonly action: "none"; readonly reason: string }
  | { readonly action: "stop" }
  | {
    readonly action: "start";
    /** Labels to write before the task is created (count, and explicitly-stopped reset at boot). */
    readonly labels: Readonly<Record<string, string>>;
    readonly stdout: string;
    readonly stderr: string;
  };

/**
 * The monitor's decision for one container: containerd's monitor() and restart.Reconcile() (1.7) in
 * one pure function. Two deliberate differences from containerd, both Docker's behaviour:
 * - a created, paused or pausing task is left alone (containerd replaces it when the desired status is
 *   running, which races a client between its Create and Start calls);
 * - `explicitly-stopped=true` keeps an `always` container down too (containerd 1.7 honours it only for
 *   unless-stopped, so `nerdctl stop` of an always container is undone within 10 s), except at boot.
 */
export function decide(
  labels: Readonly<Record<string, string>>,
  task: ObservedTask,
  options: DecideOptions = {},
): Decision {
  const desired = labels[RestartLabels.status];
  if (desired === "stopped") {
    return task.status === "absent" || task.status === "stopped"
      ? { action: "none", reason: "task is stopped as desired" }
      : { action: "stop" };
  }
  if (desired !== "running") {
    return { action: "none", reason: `desired status "${desired ?? ""}" is not handled` };
  }
  if (task.status !== "absent" && task.status !== "stopped") {
    return { action: "none", reason: `task is ${task.status}` };
  }
  let policy: RestartPolicy;
  try {
    policy = parsePolicy(labels[RestartLabels.policy] ?? "");
  } catch (err) {
    return { action: "none", reason: (err as Error).message };
  }
  const stopped = labels[RestartLabels.explicitlyStopped] === "true";
  const countText = labels[RestartLabels.count] ?? "";
  const countValid = /^[+-]?\d+$/.test(countText);
  // As containerd: a bad count stops only on-failure, which needs it; the others count again from 0.
  const count = countValid ? Number(countText) : 0;
  const extra: Record<string, string> = {};
  switch (policy.name) {
    case "no":
      return { action: "none", reason: "restart policy is no" };
    case "always":
      if (stopped && !options.boot) return { action: "none", reason: "container was stopped explicitly" };
      if (stopped) extra[RestartLabels.explicitlyStopped] = "false";
      break;
    case "unless-stopped":
      if (stopped) return { action: "none", reason: "container was stopped explicitly" };
      break;
    case "on-failure":
      if (countText !== "" && !countValid) {
        return { action: "none", reason: `invalid restart count "${countText}"` };
      }
      if (task.exitStatus === 0) return { action: "none", reason: "task exited with status 0" };
      // containerd's `max == 0 || count < max`: a negative maximum never restarts.
      if (policy.maxRetries !== 0 && count >= policy.maxRetries) {
        return { action: "none", reason: `restarted ${count} times, the policy's maximum` };
      }
      break;
  }
  const io = logIO(labels);
  return { action: "start", labels: { [RestartLabels.count]: String(count + 1), ...extra }, ...io };
}

/**
 * The task's stdout and stderr as containerd's startChange gives them: cio.LogURI(loguri) (both streams
 * to the one URI), else the deprecated logpath, else cio.NullIO. A logpath becomes a `file://` URI, as
 * containerd's deprecation note asks: the runc shim would take a bare path for a FIFO.
 */
export function logIO(labels: Readonly<Record<string, string>>): { stdout: string; stderr: string } {
  const uri = labels[RestartLabels.logUri] ?? "";
  if (uri !== "") return { stdout: uri, stderr: uri };
  const path = labels[RestartLabels.logPath] ?? "";
  if (path !== "") {
    const file = `file://${path.split("/").map(encodeURIComponent).join("/")}`;
    return { stdout: file, stderr: file };
  }
  return { stdout: "", stderr: "" };
}
