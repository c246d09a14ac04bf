/**
 * Docker-style networking done by the shim itself. A container made by `berth run` carries OCI hooks
 * that run `berth internal oci-hook` (src/core/dockernet/hooks.ts): under runc each is a new Deno
 * process that loads Berth before it runs a CNI plugin, measured at ~100 ms of a `run -d -p` and again
 * of an `rm -f`. As with json-file logs, Berth's shim does that work in process instead: it takes its
 * own hook entries out of the bundle's config.json before `runc create` (so runc does not run them too),
 * attaches the network once `runc create` has made the init's netns (the user's process has not started
 * yet, as with createRuntime), and detaches after the init is gone at Delete. Foreign shims
 * (containerd-shim-runc-v2) leave the hooks in the spec and runc runs them.
 *
 * The core module is loaded on first use: a shim whose containers have no network never loads CNI.
 */
import { writeFileAtomicSync } from "../base/atomic_write.ts";
import type { TakenHooks } from "../core/dockernet/hooks.ts";

/** What the network work needs of the shim: its reaper must leave the plugins' exits to Deno. */
export interface NetworkContext {
  readonly track: (child: Deno.ChildProcess) => void;
  readonly log: (message: string) => void;
}

export class ContainerNetwork {
  readonly #hooks: TakenHooks;
  readonly #annotations: Readonly<Record<string, string>>;
  #attached = false;

  private constructor(hooks: TakenHooks, annotations: Readonly<Record<string, string>>) {
    this.#hooks = hooks;
    this.#annotations = annotations;
  }

  /**
   * Takes Berth's network hooks out of the bundle's config.json; undefined (and the file untouched) when
   * it has none.
   */
  static async claim(bundle: string): Promise<ContainerNetwork | undefined> {
    const path = `${bundle}/config.json`;
    const text = await Deno.readTextFile(path);
    // Cheap test first: most containers have no hook at all, and need not load the module.
    if (!text.includes('"oci-hook"')) return undefined;
    const { takeNetworkHooks } = await import("../core/dockernet/hooks.ts");
    const spec = JSON.parse(text) as Record<string, unknown>;
    const hooks = takeNetworkHooks(spec);
    if (!hooks) return undefined;
    writeFileAtomicSync(path, JSON.stringify(spec), { mode: 0o666 });
    const annotations = (spec.annotations ?? {}) as Record<string, string>;
    return new ContainerNetwork(hooks, annotations);
  }

  /** The createRuntime hook's work: rejects with the CNI error, having undone what it did. */
  async attach(id: string, pid: number, ctx: NetworkContext): Promise<void> {
    const paths = this.#hooks.createRuntime;
    if (!paths) return;
    const { attachNetworks } = await import("../core/dockernet/attach.ts");
    await attachNetworks({ id, pid, annotations: this.#annotations }, paths, {
      onSpawn: ctx.track,
      log: ctx.log,
    });
    this.#attached = true;
  }

  /** The poststop hook's work, once the init is gone; never rejects (problems are logged). */
  async detach(id: string, ctx: NetworkContext): Promise<void> {
    const paths = this.#hooks.postStop;
    if (!paths) return;
    const { detachNetworks } = await import("../core/dockernet/attach.ts");
    await detachNetworks({ id, annotations: this.#annotations }, paths, { onSpawn: ctx.track, log: ctx.log });
    this.#attached = false;
  }

  get attached(): boolean {
    return this.#attached;
  }
}
