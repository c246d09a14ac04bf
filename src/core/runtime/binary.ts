import { fromBinary } from "@bufbuild/protobuf";
import { fdSyscalls } from "../../../ffi/fd.ts";
import { type DeleteResponse, DeleteResponseSchema } from "../../gen/runtime/task/v2/shim_pb.ts";
import { deadlineExceeded, invalidArgument, notFound, unavailable } from "./errors.ts";
import type { Bundle } from "./bundle.ts";
import { selfCommand } from "../../self.ts";

/** Berth's own shim: the running executable in its `shim` role. */
export function berthShimCommand(): string[] {
  return selfCommand("shim", ["-A", "--quiet"]);
}

/**
 * The shim command of a runtime, as containerd resolves it: a configured binary first, Berth's own shim
 * for `io.containerd.runc.v2`, else `containerd-shim-<name>-<version>` on PATH.
 */
export function shimCommand(runtime: string, overrides: Readonly<Record<string, string>>): string[] {
  const configured = overrides[runtime];
  if (configured) return [configured];
  if (runtime === "io.containerd.runc.v2") return berthShimCommand();
  const parts = runtime.split(".");
  if (parts.length < 2 || runtime.includes("/")) {
    throw invalidArgument(`Invalid runtime name "${runtime}": use the form io.containerd.<name>.<version>`);
  }
  const binary = `containerd-shim-${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
  const found = lookPath(binary);
  if (!found) throw notFound(`Runtime "${runtime}" binary not installed: ${binary} is not on PATH`);
  return [found];
}

function lookPath(binary: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(`${dir}/${binary}`);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return `${dir}/${binary}`;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

export interface ShimEnv {
  /** The daemon's gRPC address. */
  readonly address: string;
  /** Where the daemon serves ttrpc Events for shims: `<address>.ttrpc`. */
  readonly ttrpcAddress: string;
  readonly debug?: boolean;
}

/**
 * The program and arguments for `command`, after marking this process's descriptors close-on-exec:
 * Deno's node-compat listeners are opened without it, and a long-lived shim holding the daemon's API
 * socket would keep that address "served" after the daemon died.
 */
function withoutInheritedFds(command: readonly string[], args: string[]): [string, string[]] {
  fdSyscalls().closeOnExecAll();
  return [command[0]!, args];
}

function shimArgs(
  command: readonly string[],
  ns: string,
  env: ShimEnv,
  tail: string[],
): Deno.CommandOptions & {
  args: string[];
} {
  const publish = Deno.build.standalone ? Deno.execPath() : command[0]!;
  return {
    args: [
      ...command.slice(1),
      "-namespace",
      ns,
      "-address",
      env.address,
      "-publish-binary",
      publish,
      ...tail,
    ],
    env: {
      TTRPC_ADDRESS: env.ttrpcAddress,
      GRPC_ADDRESS: env.address,
      NAMESPACE: ns,
      GOMAXPROCS: "2",
    },
  };
}

/**
 * Runs `<shim> … -id <id> start` in the bundle and returns the address it prints: a plain
 * `unix://…` address (shim v2 of containerd 1.6) or the JSON bootstrap form of later versions.
 */
export async function startShim(
  command: readonly string[],
  bundle: Bundle,
  options: { env: ShimEnv; options?: Uint8Array; timeoutMs?: number },
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5000;
  if (isBerthShim(command)) return await startBerthShim(bundle, options);
  const tail = ["-id", bundle.id, ...(options.env.debug ? ["-debug"] : []), "start"];
  const base = shimArgs(command, bundle.namespace, options.env, tail);
  const [program, args] = withoutInheritedFds(command, base.args);
  const child = new Deno.Command(program, {
    ...base,
    args,
    cwd: bundle.path,
    stdin: options.options ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    if (options.options) {
      const w = child.stdin.getWriter();
      await w.write(options.options).catch(() => {});
      await w.close().catch(() => {});
    }
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    if (out.signal === "SIGKILL") {
      throw deadlineExceeded(
        `Shim ${command[0]} for task "${bundle.id}" did not start within ${timeoutMs} ms`,
      );
    }
    if (!out.success) {
      throw unavailable(
        `Cannot start shim ${command[0]} for task "${bundle.id}": exit status ${out.code}: ${
          lastLines(stderr || stdout)
        }`,
      );
    }
    const address = parseBootstrap(stdout);
    if (!address) {
      throw unavailable(
        `Shim ${command[0]} for task "${bundle.id}" printed no address: ${lastLines(stderr)}`,
      );
    }
    return address;
  } finally {
    clearTimeout(timer);
  }
}

function isBerthShim(command: readonly string[]): boolean {
  const own = berthShimCommand();
  return command.length === own.length && command.every((c, i) => c === own[i]);
}

/**
 * Berth's own shim is started in-process: the same work as its `start` action (find the group's live
 * shim or spawn one) without a runtime start just to print an address. Other shims get containerd's
 * contract.
 */
async function startBerthShim(
  bundle: Bundle,
  options: { env: ShimEnv; options?: Uint8Array; timeoutMs?: number },
): Promise<string> {
  fdSyscalls().closeOnExecAll();
  const { startOrReuseShim } = await import("../../shim/manager.ts");
  const env = options.env;
  return await startOrReuseShim({
    namespace: bundle.namespace,
    id: bundle.id,
    address: env.address,
    publishBinary: Deno.execPath(),
    debug: env.debug ?? false,
    bundle: bundle.path,
    socket: "",
    version: false,
    action: "start",
  }, {
    options: options.options,
    env: { TTRPC_ADDRESS: env.ttrpcAddress, GRPC_ADDRESS: env.address, NAMESPACE: bundle.namespace },
  });
}

/** The shim's address from what `start` printed: a bare address or `{"version":2,"address":…}`. */
export function parseBootstrap(stdout: string): string | undefined {
  const text = stdout.trim();
  if (text.startsWith("{")) {
    try {
      const b = JSON.parse(text) as { address?: unknown; protocol?: unknown };
      if (b.protocol !== undefined && b.protocol !== "ttrpc") return undefined;
      return typeof b.address === "string" && b.address !== "" ? b.address : undefined;
    } catch {
      return undefined;
    }
  }
  const line = text.split("\n").map((l) => l.trim()).filter((l) => l !== "").pop();
  return line || undefined;
}

/** Runs `<shim> … -id <id> -bundle <path> delete`: the shim's own cleanup after it died. */
export async function deleteShim(
  command: readonly string[],
  bundle: Bundle,
  options: { env: ShimEnv; timeoutMs?: number },
): Promise<DeleteResponse> {
  const base = shimArgs(command, bundle.namespace, options.env, [
    "-id",
    bundle.id,
    "-bundle",
    bundle.path,
    "delete",
  ]);
  const out = await new Deno.Command(command[0]!, {
    ...base,
    cwd: bundle.path,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  }).output();
  if (!out.success) {
    throw unavailable(
      `Shim delete of task "${bundle.id}" failed: exit status ${out.code}: ${
        lastLines(new TextDecoder().decode(out.stderr))
      }`,
    );
  }
  return fromBinary(DeleteResponseSchema, out.stdout);
}

function lastLines(s: string): string {
  return s.trim().split("\n").slice(-3).join("; ") || "no output";
}
