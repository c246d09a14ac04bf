/**
 * An in-memory ComposeBackend for the engine's tests: images, networks, volumes and containers in
 * maps, every action recorded in `calls` (`create shop-web-1`, `start shop-web-1`, …), and hooks to
 * make a step fail or an exec answer as a test needs.
 */
import type { RunOptions } from "../run_options.ts";
import type { ComposeBackend, ContainerInfo, ExecOptions, LogLine, LogOptions } from "./backend.ts";

export interface FakeContainer {
  readonly id: string;
  readonly options: RunOptions;
  running: boolean;
  exitCode?: number;
  /** Anonymous volumes it made. */
  readonly anonymous: string[];
  readonly log: string[];
}

export class FakeComposeBackend implements ComposeBackend {
  readonly images = new Set<string>();
  readonly networks = new Map<string, Record<string, string>>();
  readonly volumes = new Map<string, Record<string, string>>();
  readonly containers = new Map<string, FakeContainer>();
  readonly calls: string[] = [];
  /** Throws from the named step (`start shop-web-1`, `pull nginx`, …) when it returns an Error. */
  failWhen: (call: string) => Error | undefined = () => undefined;
  /** The exit code of an exec; default 0. */
  onExec: (c: FakeContainer, argv: readonly string[], options: ExecOptions) => number | Promise<number> =
    () => 0;
  #next = 1;

  #record(call: string): void {
    this.calls.push(call);
    const err = this.failWhen(call);
    if (err) throw err;
  }

  #byId(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new Error(`No such container: ${id}`);
    return c;
  }

  /** The container of a name. */
  named(name: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.options.name === name);
  }

  imageExists(ref: string): Promise<boolean> {
    return Promise.resolve(this.images.has(ref));
  }
  pullImage(ref: string): Promise<void> {
    this.#record(`pull ${ref}`);
    this.images.add(ref);
    return Promise.resolve();
  }
  networkExists(name: string): Promise<boolean> {
    return Promise.resolve(this.networks.has(name));
  }
  createNetwork(name: string, options: { labels: Record<string, string>; subnet?: string }): Promise<void> {
    this.#record(`network create ${name}${options.subnet ? ` ${options.subnet}` : ""}`);
    this.networks.set(name, options.labels);
    return Promise.resolve();
  }
  removeNetwork(name: string): Promise<void> {
    this.#record(`network rm ${name}`);
    this.networks.delete(name);
    return Promise.resolve();
  }
  volumeExists(name: string): Promise<boolean> {
    return Promise.resolve(this.volumes.has(name));
  }
  createVolume(name: string, options: { labels: Record<string, string> }): Promise<void> {
    this.#record(`volume create ${name}`);
    this.volumes.set(name, options.labels);
    return Promise.resolve();
  }
  removeVolume(name: string): Promise<void> {
    this.#record(`volume rm ${name}`);
    this.volumes.delete(name);
    return Promise.resolve();
  }
  listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const c of this.containers.values()) {
      const l = c.options.labels ?? {};
      if (!Object.entries(labels).every(([k, v]) => l[k] === v)) continue;
      out.push({
        id: c.id,
        name: c.options.name!,
        image: c.options.image,
        labels: l,
        running: c.running,
        ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}),
        status: c.running ? "Up" : c.exitCode !== undefined ? `Exited (${c.exitCode})` : "Created",
        ports: c.options.ports ?? [],
      });
    }
    return Promise.resolve(out);
  }
  create(options: RunOptions): Promise<string> {
    this.#record(`create ${options.name}`);
    if (this.named(options.name!)) throw new Error(`Name "${options.name}" is already in use`);
    if (!this.images.has(options.image)) throw new Error(`Image "${options.image}" not found`);
    for (const n of options.networks ?? []) {
      if (n !== "host" && n !== "none" && !this.networks.has(n)) throw new Error(`Network "${n}" not found`);
    }
    const anonymous: string[] = [];
    for (const v of options.volumes ?? []) {
      if (v.kind === "volume" && !this.volumes.has(v.name)) this.volumes.set(v.name, {});
      if (v.kind === "anonymous") {
        const name = `anon-${this.#next}-${anonymous.length}`;
        this.volumes.set(name, {});
        anonymous.push(name);
      }
    }
    const id = `c${this.#next++}`;
    this.containers.set(id, { id, options, running: false, anonymous, log: [] });
    return Promise.resolve(id);
  }
  start(id: string): Promise<void> {
    const c = this.#byId(id);
    this.#record(`start ${c.options.name}`);
    c.running = true;
    delete c.exitCode;
    return Promise.resolve();
  }
  stop(id: string, timeoutS: number): Promise<void> {
    const c = this.#byId(id);
    this.#record(`stop ${c.options.name} ${timeoutS}`);
    if (c.running) {
      c.running = false;
      c.exitCode = 137;
    }
    return Promise.resolve();
  }
  remove(id: string, options: { volumes: boolean }): Promise<void> {
    const c = this.#byId(id);
    this.#record(`rm ${c.options.name}${options.volumes ? " -v" : ""}`);
    if (c.running) throw new Error(`Container ${c.options.name} is running`);
    if (options.volumes) c.anonymous.forEach((v) => this.volumes.delete(v));
    this.containers.delete(id);
    return Promise.resolve();
  }
  async exec(id: string, argv: readonly string[], options: ExecOptions): Promise<number> {
    const c = this.#byId(id);
    this.#record(`exec ${c.options.name} ${argv.join(" ")}`);
    if (!c.running) throw new Error(`Container ${c.options.name} is not running`);
    return await this.onExec(c, argv, options);
  }
  async logs(
    containers: ReadonlyArray<{ readonly id: string; readonly name: string }>,
    options: LogOptions,
    write: (line: LogLine) => void,
  ): Promise<void> {
    for (const { id, name } of containers) {
      const lines = this.#byId(id).log;
      for (const text of options.tail !== undefined ? lines.slice(-options.tail) : lines) {
        write({ container: name, stream: "stdout", text });
      }
    }
    if (!options.follow || !options.signal) return;
    const signal = options.signal;
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
}
