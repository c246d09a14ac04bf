/**
 * gVisor's `runsc` takes runc's commands, but not runc's reading of a spec's network namespace: with its
 * default `--network=sandbox` it copies the interfaces of the namespace it starts in, and refuses a
 * namespace that has none to copy ("cannot run with network enabled in root network namespace"), which
 * is every `ctr run` without `--cni`. The shim says in runsc's terms what the spec asks for.
 */

/** The runtime binary is gVisor's runsc (by name or path; a wrapper script under another name is not). */
export function isRunsc(binary: string): boolean {
  return binary.slice(binary.lastIndexOf("/") + 1) === "runsc";
}

interface SpecNamespaces {
  readonly linux?: { readonly namespaces?: readonly { readonly type?: string; readonly path?: string }[] };
}

/**
 * runsc's `--network` for a spec: no network namespace is the host's (`host`); a new one is an empty
 * namespace with only loopback, as runc makes (`none`); a namespace given by path (CNI, a CRI pod) is
 * copied by runsc's own default (no flag).
 */
export function runscNetworkArgs(spec: SpecNamespaces): string[] {
  const ns = spec.linux?.namespaces?.find((n) => n.type === "network");
  if (!ns) return ["--network=host"];
  if (!ns.path) return ["--network=none"];
  return [];
}

/** The global flags Berth adds for `binary` running the bundle's spec; none for runtimes but runsc. */
export function runtimeArgsFor(binary: string, bundle: string): string[] {
  if (!isRunsc(binary)) return [];
  const spec = JSON.parse(Deno.readTextFileSync(`${bundle}/config.json`)) as SpecNamespaces;
  return runscNetworkArgs(spec);
}
