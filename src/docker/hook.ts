/**
 * The OCI hook that gives Docker-style containers their networks, as nerdctl's pkg/ocihook does: runc
 * runs `berth internal oci-hook createRuntime` once the container's namespaces exist (before its process
 * starts) and `berth internal oci-hook postStop` when the container is deleted, each with the OCI state
 * ({id, pid, bundle, annotations}) on stdin. The hook needs no daemon: everything it needs is in the
 * annotations, which the run command copies from the container's labels. The work itself is the core's
 * (src/core/dockernet/attach.ts), which Berth's own shim does in process instead of running this hook;
 * the hook process is for foreign shims (containerd-shim-runc-v2).
 */
import { attachNetworks, detachNetworks, type HookState } from "../core/dockernet/attach.ts";
import type { HookEvent } from "../core/dockernet/hooks.ts";
import type { NetworkPaths } from "../core/dockernet/paths.ts";

export {
  cniChainName,
  cniContainerId,
  type HookPlan,
  hookPlan,
  type HookState,
  removeIptablesRules,
} from "../core/dockernet/attach.ts";
export {
  HOOK_TIMEOUT_S,
  hookEnvPaths,
  type HookEvent,
  networkHooks,
  type OciHook,
} from "../core/dockernet/hooks.ts";

/**
 * Runs the hook for `event`. createRuntime attaches the container and rejects when that fails (runc
 * then fails the create, and the user sees why); postStop detaches and never rejects: a container that
 * cannot be cleaned up completely must still be deletable, so its errors are logged to stderr instead.
 */
export async function ociHook(event: HookEvent, state: HookState, paths: NetworkPaths): Promise<void> {
  const log = (message: string) => console.error(message.replace(/^berth:/, "berth oci-hook:"));
  if (event === "createRuntime") return await attachNetworks(state, paths, { log });
  if (event === "postStop") return await detachNetworks(state, paths, { log });
  throw new Error(`Unknown OCI hook event "${event}": use createRuntime or postStop`);
}
