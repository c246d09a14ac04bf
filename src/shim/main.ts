/**
 * `berth shim …`: containerd's shim v2 command line, as containerd-shim-runc-v2 takes it.
 *
 *   berth shim -namespace NS -id ID -address DAEMON_SOCK [-publish-binary P] [-debug] [-bundle DIR] ACTION
 *
 * ACTION `start` finds or starts the serving shim of the container's group and prints its address;
 * `delete` cleans up after a dead shim and prints a DeleteResponse; no action serves the Task API on
 * -socket. The working directory is the bundle; env TTRPC_ADDRESS names the daemon's event socket, and
 * stdin may carry the runtime options (a protobuf Any).
 */

export interface ShimFlags {
  readonly namespace: string;
  readonly id: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly debug: boolean;
  readonly bundle: string;
  readonly socket: string;
  readonly version: boolean;
  readonly action: string;
}

const STRING_FLAGS = new Set(["namespace", "id", "address", "publish-binary", "bundle", "socket"]);
const BOOL_FLAGS = new Set(["debug", "v"]);

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
    action: args[i] ?? "",
  };
}

export async function shimMain(args: string[]): Promise<number> {
  let flags: ShimFlags;
  try {
    flags = parseShimFlags(args);
  } catch (err) {
    console.error(`berth shim: ${(err as Error).message}`);
    return 2;
  }
  if (flags.version) {
    console.log(`berth shim:\n  Version:  ${Deno.build.standalone ? "compiled" : "source"}\n`);
    return 0;
  }
  if (!flags.namespace) {
    console.error("berth shim: shim namespace cannot be empty");
    return 1;
  }
  try {
    switch (flags.action) {
      case "start": {
        const { startShim } = await import("./manager.ts");
        return await startShim(flags);
      }
      case "delete": {
        const { deleteShim } = await import("./manager.ts");
        return await deleteShim(flags);
      }
      case "": {
        const { serveShim } = await import("./server.ts");
        return await serveShim(flags);
      }
      default:
        console.error(`berth shim: unknown action ${JSON.stringify(flags.action)}`);
        return 2;
    }
  } catch (err) {
    // containerd shows the start action's combined output as the error: keep it to one line.
    await Deno.stderr.write(
      new TextEncoder().encode(`berth shim ${flags.action}: ${(err as Error).message}`),
    );
    return 1;
  }
}
