/**
 * The labels the Docker-style verbs put on containers: nerdctl's keys (pkg/labels), so the two tools read
 * each other's containers, and containerd's restart-monitor keys. The network keys go into the OCI spec's
 * annotations too, where the networking hook reads them from the bundle.
 */
export const LABELS = {
  name: "nerdctl/name",
  hostname: "nerdctl/hostname",
  namespace: "nerdctl/namespace",
  networks: "nerdctl/networks",
  ports: "nerdctl/ports",
  logUri: "nerdctl/log-uri",
  stateDir: "nerdctl/state-dir",
  mounts: "nerdctl/mounts",
  anonymousVolumes: "nerdctl/anonymous-volumes",
  platform: "nerdctl/platform",
  /** Extra names on the container's networks (compose's service name). Berth's own key. */
  aliases: "berth/aliases",
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

/** A published port as nerdctl records it in `nerdctl/ports`. */
export interface PortLabel {
  HostPort: number;
  ContainerPort: number;
  Protocol: string;
  HostIP: string;
}

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
