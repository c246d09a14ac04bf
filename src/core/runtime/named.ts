import type { AnyValue } from "../containers/mod.ts";

/**
 * A runtime configured by name (CRI's `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME]`):
 * the shim its `runtime_type` names and the options its `options` table encodes.
 */
export interface NamedRuntime {
  readonly runtimeType: string;
  readonly options?: AnyValue;
}

/**
 * The shim name and runtime options a container's runtime resolves to: a configured name becomes its
 * `runtime_type`, with the configured options unless the container carries its own (ctr's `--runtime
 * gvisor` sends none; `--runc-binary` does). Any other name is a shim name and passes through.
 */
export function resolveRuntime(
  name: string,
  options: AnyValue | undefined,
  named: ReadonlyMap<string, NamedRuntime>,
): { runtime: string; options?: AnyValue } {
  const configured = named.get(name);
  if (!configured) return { runtime: name, options };
  return { runtime: configured.runtimeType, options: options ?? configured.options };
}
