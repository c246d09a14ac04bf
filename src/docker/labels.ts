/**
 * The labels the Docker-style verbs put on containers: nerdctl's keys (pkg/labels), so the two tools read
 * each other's containers, and containerd's restart-monitor keys. The network keys go into the OCI spec's
 * annotations too, where the network attachment reads them from the bundle (src/core/dockernet).
 */
import { NETWORK_ANNOTATIONS } from "../core/dockernet/annotations.ts";

export type { PortLabel } from "../core/dockernet/annotations.ts";

export const LABELS = {
  name: NETWORK_ANNOTATIONS.name,
  hostname: NETWORK_ANNOTATIONS.hostname,
  namespace: NETWORK_ANNOTATIONS.namespace,
  networks: NETWORK_ANNOTATIONS.networks,
  ports: NETWORK_ANNOTATIONS.ports,
  logUri: "nerdctl/log-uri",
  stateDir: "nerdctl/state-dir",
  mounts: "nerdctl/mounts",
  anonymousVolumes: "nerdctl/anonymous-volumes",
  platform: "nerdctl/platform",
  /** Extra names on the container's networks (compose's service name). Berth's own key. */
  aliases: NETWORK_ANNOTATIONS.aliases,
  /**
   * `run -d --rm`: the daemon removes the container once its task exits (Docker's AutoRemove; nerdctl
   * refuses the combination). Berth's own key, read by core/restart/auto_remove.ts.
   */
  autoRemove: "berth/auto-remove",
  /** The exit status and time of a task that `stop`/`rm` deleted, for `ps -a`. Berth's own keys. */
  exitCode: "berth/exit-code",
  finishedAt: "berth/finished-at",
  stopSignal: "io.containerd.image.config.stop-signal",
  restartStatus: "containerd.io/restart.status",
  restartPolicy: "containerd.io/restart.policy",
  restartLogUri: "containerd.io/restart.loguri",
  restartExplicitlyStopped: "containerd.io/restart.explicitly-stopped",
  composeProject: "com.docker.compose.project",
  composeService: "com.docker.compose.service",
  composeNumber: "com.docker.compose.container-number",
} as const;

/** Reads a JSON label, or `fallback` when absent or unreadable. */
export function jsonLabel<T>(labels: Readonly<Record<string, string>>, key: string, fallback: T): T {
  const raw = labels[key];
  if (raw === undefined || raw === "") return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return fallback;
  }
}
