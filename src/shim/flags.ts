/** containerd's shim v2 command line, parsed as Go's `flag` package does. */

export interface ShimFlags {
  readonly namespace: string;
  readonly id: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly debug: boolean;
  readonly bundle: string;
  readonly socket: string;
  readonly version: boolean;
  /** Berth's spare shim: loads the serving shim, then waits on stdin for its first container. */
  readonly spare: boolean;
  readonly action: string;
}

const STRING_FLAGS = new Set(["namespace", "id", "address", "publish-binary", "bundle", "socket"]);
const BOOL_FLAGS = new Set(["debug", "v", "spare"]);

/** Parses Go `flag` package syntax: -name value, -name=value, --name, bools alone; then the action. */
export function parseShimFlags(args: readonly string[]): ShimFlags {
  const values: Record<string, string> = {};
  const bools: Record<string, boolean> = {};
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (BOOL_FLAGS.has(name)) {
      bools[name] = eq >= 0 ? body.slice(eq + 1) !== "false" : true;
    } else if (STRING_FLAGS.has(name)) {
      if (eq >= 0) values[name] = body.slice(eq + 1);
      else {
        const v = args[++i];
        if (v === undefined) throw new Error(`Flag -${name} needs an argument`);
        values[name] = v;
      }
    } else {
      throw new Error(`Unknown flag -${name}`);
    }
  }
  return {
    namespace: values.namespace ?? "",
    id: values.id ?? "",
    address: values.address ?? "",
    publishBinary: values["publish-binary"] ?? "containerd",
    debug: bools.debug ?? false,
    bundle: values.bundle ?? "",
    socket: values.socket ?? "",
    version: bools.v ?? false,
    spare: bools.spare ?? false,
    action: args[i] ?? "",
  };
}
