/**
 * `berth run -d --rm`: a detached container removed once its task exits, as Docker's daemon does for
 * HostConfig.AutoRemove (nerdctl refuses the combination, since no client is left to remove it). The
 * container carries AUTO_REMOVE_LABEL; the daemon watches its task's exit and, at start-up, sweeps
 * labelled containers whose task is gone (it exited while the daemon was down). The removal itself is
 * the host's: the daemon runs its own `rm -f -v`, so the network, hosts, log and anonymous volumes go
 * exactly as a user's `berth rm` takes them.
 */

/** On a container: remove it once its task has exited. */
export const AUTO_REMOVE_LABEL = "berth/auto-remove";

export interface AutoRemoveHost {
  /** The container's labels, or undefined when it is gone. */
  labels(ns: string, id: string): Readonly<Record<string, string>> | undefined;
  /** Whether the container has a task that has not exited (created, running, paused). */
  hasLiveTask(ns: string, id: string): Promise<boolean>;
  /** Every container of every namespace carrying `label`. */
  labelled(label: string): { ns: string; id: string }[];
  /** Removes the container and everything the Docker-style verbs made for it. */
  remove(ns: string, id: string, labels: Readonly<Record<string, string>>): Promise<void>;
}

export interface AutoRemoverOptions {
  readonly log: { warn(msg: string, fields?: Record<string, unknown>): void };
}

export class AutoRemover {
  readonly #host: AutoRemoveHost;
  readonly #log: AutoRemoverOptions["log"];
  /** Removals under way, by `ns/id`: an exit event and the start-up sweep may name the same one. */
  readonly #running = new Map<string, Promise<void>>();

  constructor(host: AutoRemoveHost, options: AutoRemoverOptions) {
    this.#host = host;
    this.#log = options.log;
  }

  /** A task's init process exited: its container goes when it asked to. */
  taskExited(ns: string, id: string): Promise<void> {
    const labels = this.#host.labels(ns, id);
    if (labels?.[AUTO_REMOVE_LABEL] !== "true") return Promise.resolve();
    return this.#remove(ns, id, labels);
  }

  /** At start-up: labelled containers whose task is gone are removed. */
  async sweep(): Promise<void> {
    await Promise.all(
      this.#host.labelled(AUTO_REMOVE_LABEL).map(async ({ ns, id }) => {
        const labels = this.#host.labels(ns, id);
        if (labels?.[AUTO_REMOVE_LABEL] !== "true") return;
        if (await this.#host.hasLiveTask(ns, id).catch(() => true)) return;
        await this.#remove(ns, id, labels);
      }),
    );
  }

  /** Waits for the removals under way. */
  async settled(): Promise<void> {
    await Promise.all(this.#running.values());
  }

  #remove(ns: string, id: string, labels: Readonly<Record<string, string>>): Promise<void> {
    const key = `${ns}/${id}`;
    const running = this.#running.get(key);
    if (running) return running;
    const done = this.#host.remove(ns, id, labels).catch((err) =>
      this.#log.warn("cannot remove an exited --rm container", {
        namespace: ns,
        id,
        error: (err as Error).message,
      })
    ).finally(() => this.#running.delete(key));
    this.#running.set(key, done);
    return done;
  }
}
