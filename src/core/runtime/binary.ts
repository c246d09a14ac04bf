import { fromBinary } from "@bufbuild/protobuf";
import { outputClean, spawnClean } from "../../base/spawn.ts";
import { type DeleteResponse, DeleteResponseSchema } from "../../gen/runtime/task/v2/shim_pb.ts";
import { deadlineExceeded, invalidArgument, notFound, unavailable } from "../../base/errors.ts";
import type { Bundle } from "./bundle.ts";
import { selfCommand } from "../../base/self.ts";
import { startOrReuseShim } from "./shim_group.ts";
import type { SpareShims } from "./spare_shim.ts";

/** Berth's own shim: the running executable in its `shim` role. */
export function berthShimCommand(): string[] {
  return selfCommand("shim", ["-A", "--quiet"]);
}

/**
 * The shim command of a runtime, resolved as containerd 1.6 does (runtime/v2 `resolveRuntimePath`): an
 * absolute path is the shim binary itself; a configured binary comes next, Berth's own shim serves
 * `io.containerd.runc.v2`, and any other `<prefix>.<name>.<version>` runs `containerd-shim-<name>-<version>`
 * from beside the name's folder or from PATH. The messages are containerd's, which clients show as is.
 */
export function shimCommand(runtime: string, overrides: Readonly<Record<string, string>>): string[] {
  if (runtime === "") throw invalidArgument("Cannot start a shim: no runtime name");
  if (runtime.startsWith("/")) {
    try {
      Deno.statSync(runtime);
    } catch (err) {
      const cause = err instanceof Deno.errors.NotFound
        ? "no such file or directory"
        : (err as Error).message;
      throw notFound(`invalid custom binary path: stat ${runtime}: ${cause}`);
    }
    return [runtime];
  }
  const configured = overrides[runtime];
  if (configured) return [configured];
  if (runtime === "io.containerd.runc.v2") return berthShimCommand();
  const binary = shimBinaryName(runtime);
  if (!binary) {
    throw invalidArgument(
      `invalid runtime name ${runtime}, correct runtime name should be either format like ` +
        "`io.containerd.runc.v1` or a full path to the binary",
    );
  }
  const slash = runtime.lastIndexOf("/");
  const beside = slash < 0 ? undefined : `${runtime.slice(0, slash)}/${binary}`;
  const found = (beside && isExecutable(beside) ? beside : undefined) ?? lookPath(binary);
  if (!found) {
    throw notFound(`runtime "${runtime}" binary not installed "${binary}": file does not exist`);
  }
  return [found];
}

/** `containerd-shim-<name>-<version>` for `<prefix>.<name>.<version>`; undefined for fewer than two parts. */
export function shimBinaryName(runtime: string): string | undefined {
  const parts = runtime.slice(runtime.lastIndexOf("/") + 1).split(".");
  if (parts.length < 2) return undefined;
  return `containerd-shim-${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
}

function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

function lookPath(binary: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    if (dir && isExecutable(`${dir}/${binary}`)) return `${dir}/${binary}`;
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
  options: { env: ShimEnv; options?: Uint8Array; timeoutMs?: number; spares?: SpareShims },
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5000;
  if (isBerthShim(command)) return await startBerthShim(bundle, options);
  const tail = ["-id", bundle.id, ...(options.env.debug ? ["-debug"] : []), "start"];
  const base = shimArgs(command, bundle.namespace, options.env, tail);
  const child = spawnClean(command[0]!, {
    ...base,
    cwd: bundle.path,
    stdin: options.options ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
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
  options: { env: ShimEnv; options?: Uint8Array; timeoutMs?: number; spares?: SpareShims },
): Promise<string> {
  const env = options.env;
  return await startOrReuseShim({
    namespace: bundle.namespace,
    id: bundle.id,
    address: env.address,
    publishBinary: Deno.execPath(),
    debug: env.debug ?? false,
    bundle: bundle.path,
  }, {
    options: options.options,
    spares: options.spares,
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
  const out = await outputClean(command[0]!, {
    ...base,
    cwd: bundle.path,
    stdin: "null",
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
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
