/**
 * The OCI hook entries that give a Docker-style container its networks: `createRuntime` and `poststop`
 * running this executable's `internal oci-hook <event>`, which runc runs with the container's state on
 * stdin. Written here into the spec by the run command, and read here by Berth's own shim, which
 * recognises its own entries, takes them out of the bundle's config.json before `runc create`, and does
 * their work in process (src/shim/network.ts): a Deno process start per hook is most of a `run -d`'s
 * time. A foreign shim leaves them to runc.
 */
import { selfCommand } from "../../base/self.ts";
import {
  cniBinDirsOf,
  dataStoreOf,
  DEFAULT_CNI_NETCONFPATH,
  DEFAULT_DATA_ROOT,
  type NetworkPaths,
} from "./paths.ts";

export type HookEvent = "createRuntime" | "postStop";

/** An OCI runtime-spec hook entry. */
export interface OciHook {
  readonly path: string;
  readonly args: string[];
  readonly env: string[];
  readonly timeout: number;
}

/** Seconds runc gives each hook: a CNI chain of four plugins plus iptables can take a while on a busy host. */
export const HOOK_TIMEOUT_S = 30;

/** The namespace and socket a hook's environment names when it names none (the CLI's defaults). */
const DEFAULT_NAMESPACE = "default";
const DEFAULT_ADDRESS = "/run/berth/berth.sock";

/**
 * The hook entries that run this executable's `internal oci-hook <event>`. Their environment places
 * the hook's state as the CLI's global flags would: BERTH_DATA_ROOT and BERTH_ADDRESS (the data store is
 * `<data-root>/<hash of address>`), BERTH_NAMESPACE, BERTH_CNI_PATH, BERTH_CNI_NETCONFPATH; PATH and HOME
 * for the plugins and iptables, DENO_DIR so a from-source run finds its module cache.
 */
export function networkHooks(
  paths: NetworkPaths & { readonly address: string },
): { createRuntime: OciHook[]; poststop: OciHook[] } {
  const argv = selfCommand("internal", ["-A", "-q", "--no-prompt"]);
  const env = [
    `BERTH_DATA_ROOT=${paths.dataStore.slice(0, paths.dataStore.lastIndexOf("/")) || "/"}`,
    `BERTH_ADDRESS=${paths.address}`,
    `BERTH_NAMESPACE=${paths.namespace}`,
    `BERTH_CNI_PATH=${paths.cniBinDirs.join(":")}`,
    `BERTH_CNI_NETCONFPATH=${paths.cniConfDir}`,
    `PATH=${Deno.env.get("PATH") || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}`,
    `HOME=${Deno.env.get("HOME") || "/root"}`,
  ];
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.push(`DENO_DIR=${denoDir}`);
  const hook = (event: HookEvent): OciHook => ({
    path: argv[0]!,
    args: [...argv, "oci-hook", event],
    env: [...env],
    timeout: HOOK_TIMEOUT_S,
  });
  // The spec's keys (runtime-spec config.md): `poststop` is all lower case, unlike the event's name.
  return { createRuntime: [hook("createRuntime")], poststop: [hook("postStop")] };
}

/** The paths a hook process works with: its environment's variables, else the CLI's defaults. */
export function hookEnvPaths(get: (name: string) => string | undefined): NetworkPaths {
  const address = get("BERTH_ADDRESS") ?? get("CONTAINERD_ADDRESS") ?? DEFAULT_ADDRESS;
  return {
    namespace: get("BERTH_NAMESPACE") ?? get("CONTAINERD_NAMESPACE") ?? DEFAULT_NAMESPACE,
    dataStore: dataStoreOf(get("BERTH_DATA_ROOT") ?? DEFAULT_DATA_ROOT, address),
    cniBinDirs: cniBinDirsOf(get("BERTH_CNI_PATH") ?? get("CNI_PATH")),
    cniConfDir: get("BERTH_CNI_NETCONFPATH") ?? get("NETCONFPATH") ?? DEFAULT_CNI_NETCONFPATH,
  };
}

/** Whether `hook` is one of networkHooks()' entries for `event`. */
export function isNetworkHook(hook: unknown, event: HookEvent): hook is OciHook {
  const args = (hook as { args?: unknown } | null)?.args;
  if (!Array.isArray(args) || args.length < 4) return false;
  const tail = args.slice(-3);
  return tail[0] === "internal" && tail[1] === "oci-hook" && tail[2] === event;
}

/** What takeNetworkHooks() took out of a spec: the paths of each event's entry. */
export interface TakenHooks {
  readonly createRuntime?: NetworkPaths;
  readonly postStop?: NetworkPaths;
}

/**
 * Removes networkHooks()' entries from `spec` (an OCI runtime spec as parsed JSON), in place, and says
 * what they would have been run with; other hooks stay. Undefined when there were none.
 */
export function takeNetworkHooks(spec: Record<string, unknown>): TakenHooks | undefined {
  const hooks = spec.hooks as Record<string, unknown> | undefined;
  if (!hooks || typeof hooks !== "object") return undefined;
  const take = (key: string, event: HookEvent): NetworkPaths | undefined => {
    const list = hooks[key];
    if (!Array.isArray(list)) return undefined;
    const i = list.findIndex((h) => isNetworkHook(h, event));
    if (i < 0) return undefined;
    const [hook] = list.splice(i, 1) as OciHook[];
    if (list.length === 0) delete hooks[key];
    const env = new Map(
      (hook!.env ?? []).filter((kv) => kv.includes("=")).map((kv) => {
        const at = kv.indexOf("=");
        return [kv.slice(0, at), kv.slice(at + 1)] as const;
      }),
    );
    return hookEnvPaths((name) => env.get(name));
  };
  const createRuntime = take("createRuntime", "createRuntime");
  const postStop = take("poststop", "postStop");
  if (Object.keys(hooks).length === 0) delete spec.hooks;
  if (!createRuntime && !postStop) return undefined;
  return { ...(createRuntime ? { createRuntime } : {}), ...(postStop ? { postStop } : {}) };
}
