/**
 * What the compose engine asks of the runtime, and nothing more: images, networks, volumes and
 * containers by name and label. The engine decides (what to create, in which order, when to wait);
 * an implementation only acts, so the engine is tested against an in-memory fake (testing.ts) and
 * the real one (src/cli/docker/compose_backend.ts) drives the daemon.
 */
import type { PortMapping, RunOptions } from "../run_options.ts";

export interface ContainerInfo {
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Its task is running (or paused). */
  readonly running: boolean;
  /** Set once its task has exited; absent for a container never started or still running. */
  readonly exitCode?: number;
  /** Docker's wording for `ps` ("Up 2 minutes", "Exited (0) 5 seconds ago", "Created"). */
  readonly status?: string;
  readonly ports?: readonly PortMapping[];
}

export interface ExecOptions {
  readonly tty?: boolean;
  /** Attach this process's stdin. */
  readonly interactive?: boolean;
  /** K=V, over the container's. */
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  /** Discard the output (health checks); default: this process's stdout and stderr. */
  readonly quiet?: boolean;
  /** Aborting kills the process (a health check's timeout, Ctrl-C). */
  readonly signal?: AbortSignal;
}

export interface LogOptions {
  readonly follow: boolean;
  /** Lines from the end of each log; default all. */
  readonly tail?: number;
  readonly timestamps: boolean;
  /** Ends a follow. */
  readonly signal?: AbortSignal;
}

export interface LogLine {
  /** The container's name. */
  readonly container: string;
  readonly stream: "stdout" | "stderr";
  /** One line, without its newline. */
  readonly text: string;
  /** RFC 3339, when timestamps were asked for. */
  readonly time?: string;
}

export interface ComposeBackend {
  imageExists(ref: string): Promise<boolean>;
  pullImage(ref: string, signal?: AbortSignal): Promise<void>;

  networkExists(name: string): Promise<boolean>;
  /** A bridge network; `subnet` absent: the next free one. */
  createNetwork(name: string, options: { labels: Record<string, string>; subnet?: string }): Promise<void>;
  removeNetwork(name: string): Promise<void>;

  volumeExists(name: string): Promise<boolean>;
  createVolume(name: string, options: { labels: Record<string, string> }): Promise<void>;
  removeVolume(name: string): Promise<void>;

  /** Every container (running or not) carrying all of `labels`. */
  listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerInfo[]>;
  /** Makes the container (name, labels, mounts, networks…) without starting it; returns its id. */
  create(options: RunOptions): Promise<string>;
  /** Starts a created or exited container, detached (its output goes to its log). */
  start(id: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), SIGKILL after `timeoutS`; no error when not running. */
  stop(id: string, timeoutS: number): Promise<void>;
  /** Deletes a stopped container; `volumes`: its anonymous volumes too. */
  remove(id: string, options: { volumes: boolean }): Promise<void>;
  /** Runs a process in a running container; resolves to its exit code. */
  exec(id: string, argv: readonly string[], options: ExecOptions): Promise<number>;
  /** Writes the containers' log lines, interleaved as they come; with `follow`, until the signal. */
  logs(
    containers: ReadonlyArray<{ readonly id: string; readonly name: string }>,
    options: LogOptions,
    write: (line: LogLine) => void,
  ): Promise<void>;
}
