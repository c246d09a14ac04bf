/**
 * Shim groups: which serving shim a container joins, and starting that shim. Berth's daemon runs this
 * in-process for its own shim (no `shim start` process just to print an address); `berth shim start`,
 * containerd's contract, runs the same code.
 *
 * A container joins the shim of its group (annotation io.containerd.runc.v2.group, else the
 * namespace; BERTH_SHIM_GROUPING=container gives one shim per container). The group's socket address is a hash of (daemon address, namespace, group), as containerd's
 * SocketAddress. A live shim there is reused; otherwise a serving shim is spawned detached and awaited.
 * The address is written to the bundle (`address`, `bootstrap.json`, `shim.pid`).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { joinPath } from "../../base/paths.ts";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { writeFileAtomicSync } from "../../base/atomic_write.ts";
import { selfCommand as selfRole } from "../../base/self.ts";
import { spawnClean } from "../../base/spawn.ts";
import { Task } from "../../gen/runtime/task/v2/shim_pb.ts";
import { OptionsSchema } from "../../gen/types/runc/options/oci_pb.ts";
import { createTtrpcClient, socketPath, TtrpcClient } from "../../ttrpc/mod.ts";

/** What starting or joining a group's shim needs to know: a subset of the shim's command-line flags. */
export interface ShimStartRequest {
  readonly namespace: string;
  readonly id: string;
  /** The daemon's gRPC address. */
  readonly address: string;
  readonly publishBinary: string;
  readonly debug: boolean;
  /** The task's bundle; the working directory when empty. */
  readonly bundle: string;
}

/** What a spare shim needs to become the serving shim of a container's group (spare_shim.ts). */
export interface Adoption {
  readonly namespace: string;
  readonly id: string;
  readonly bundle: string;
  /** The group's socket address, `unix://…`. */
  readonly socket: string;
  /** The daemon address and debug flag the shim would have been started with: a spare fits only if equal. */
  readonly address: string;
  readonly debug: boolean;
}

/** Where a started shim may come from instead of a spawn: its pid once it listens, else undefined. */
export interface SpareSource {
  adopt(adoption: Adoption): Promise<number | undefined>;
  /** A shim for the group before its first container (see SpareShims.startAhead). */
  startAhead(adoption: Omit<Adoption, "id" | "bundle">): Promise<number | undefined>;
}

/**
 * Only the runc group annotation: a CRI pod (io.kubernetes.cri.sandbox-id) shares its namespace's shim
 * unless the CRI plugin's `shim_group = "pod"` sets the group to the pod (a Deno shim per pod would
 * cost several times containerd's Go shim).
 */
export const GROUP_ANNOTATIONS = ["io.containerd.runc.v2.group"] as const;
export const SOCKET_DIR = "/run/berth/s";
const START_TIMEOUT_MS = 10_000;
/**
 * The serving shim runs with the daemon's own V8 settings unless BERTH_SHIM_V8_FLAGS says otherwise.
 * It used --lite-mode,--single-threaded (~3-5 MB less per shim), but V8 rejects code cached under other
 * flags, so the shim and the daemon then recompiled the chunks they share at every start, each undoing
 * the other's cache: a shim took ~87 ms to listen instead of ~57 ms.
 */
export function shimV8Env(): Record<string, string> {
  const flags = Deno.env.get("BERTH_SHIM_V8_FLAGS");
  return flags ? { DENO_V8_FLAGS: flags } : {};
}

/** The shim group of a container: an annotation, else the namespace (or the id, one shim per container). */
export function groupOf(
  id: string,
  namespace: string,
  annotations: Readonly<Record<string, string>>,
  grouping: string | undefined,
): string {
  for (const key of GROUP_ANNOTATIONS) {
    const g = annotations[key];
    if (g) return g;
  }
  return grouping === "container" ? id : namespace;
}

/** `unix:///run/berth/s/<sha256(join(daemonAddress, namespace, group))>`, as containerd's SocketAddress. */
export async function socketAddress(
  daemonAddress: string,
  namespace: string,
  group: string,
): Promise<string> {
  const data = new TextEncoder().encode(joinPath(daemonAddress, namespace, group));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `unix://${SOCKET_DIR}/${hex}`;
}

/**
 * Whether the socket of a group's shim exists: a serving or lingering shim has it, and removes it when
 * it exits (a killed one leaves it, so this is a hint, not a probe).
 */
export async function hasShimSocket(
  daemonAddress: string,
  namespace: string,
  group: string,
): Promise<boolean> {
  try {
    await Deno.lstat(socketPath(await socketAddress(daemonAddress, namespace, group)));
    return true;
  } catch {
    return false;
  }
}

/** The pid of the shim answering at `address`, or undefined when nothing live listens there. */
export async function liveShimPid(address: string, timeoutMs = 2_000): Promise<number | undefined> {
  let client: TtrpcClient;
  try {
    client = await TtrpcClient.connect(address, { timeoutMs });
  } catch {
    return undefined;
  }
  try {
    return (await createTtrpcClient(Task, client).connect({ id: "" })).shimPid;
  } catch {
    return undefined;
  } finally {
    client.close();
  }
}

/** argv that runs this executable's shim mode: the compiled binary, or deno with the entry module. */
export function selfCommand(args: string[]): { program: string; args: string[] } {
  // -q: deno must not write to stderr (e.g. "waiting for file lock"): containerd parses start's output.
  const [program, ...rest] = selfRole("shim", ["-q", "-A", "--no-prompt"]);
  return { program: program!, args: [...rest, ...args] };
}

function annotationsOf(bundle: string): Record<string, string> {
  const spec = JSON.parse(Deno.readTextFileSync(`${bundle}/config.json`));
  return (spec?.annotations ?? {}) as Record<string, string>;
}

/** Group addresses whose shim this process is finding or starting, each with the last caller's turn. */
const turns = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` for `key` after any earlier caller's run for it has ended. Two tasks of one group created at
 * once (CRI pods started in parallel) must not both find no shim: the second would remove the socket
 * the first one's shim (an adopted spare binds within a millisecond) had just made.
 */
async function oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = turns.get(key) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(fn);
  turns.set(key, mine);
  try {
    return await mine;
  } finally {
    if (turns.get(key) === mine) turns.delete(key);
  }
}

/**
 * The `start` action's work without its process: finds the live shim of the container's group or
 * starts one, records it in the bundle, and returns its address. Berth's daemon calls this in-process
 * for its own shim, which saves starting a runtime just to print an address.
 */
export async function startOrReuseShim(
  flags: ShimStartRequest,
  extra: { options?: Uint8Array; env?: Record<string, string>; spares?: SpareSource } = {},
): Promise<string> {
  const bundle = flags.bundle || Deno.cwd();
  const group = groupOf(
    flags.id,
    flags.namespace,
    annotationsOf(bundle),
    Deno.env.get("BERTH_SHIM_GROUPING"),
  );
  const address = await socketAddress(flags.address, flags.namespace, group);
  const pid = await oneAtATime(address, async () => {
    const live = await liveShimPid(address);
    if (live !== undefined) return live;
    await Deno.remove(socketPath(address)).catch(() => {}); // stale: nothing answered there
    const adoption = { ...flags, bundle, socket: address };
    return await extra.spares?.adopt(adoption) ?? await spawnServer(flags, bundle, address, extra.env ?? {});
  });
  writeFileAtomicSync(`${bundle}/address`, address);
  writeFileAtomicSync(`${bundle}/shim.pid`, String(pid));
  writeFileAtomicSync(
    `${bundle}/bootstrap.json`,
    JSON.stringify({ version: 2, address, protocol: "ttrpc" }),
  );
  if (extra.options) joinShimCgroup(pid, extra.options);
  return address;
}

/**
 * Starts the serving shim of `namespace`'s own group (where its containers go unless an annotation or
 * BERTH_SHIM_GROUPING says otherwise) from a spare, before any container: its address once it listens;
 * undefined when a shim serves there already, groups are per container, or no spare could be had.
 */
export async function startShimAhead(
  daemonAddress: string,
  namespace: string,
  spares: SpareSource,
): Promise<string | undefined> {
  if (Deno.env.get("BERTH_SHIM_GROUPING") === "container") return undefined;
  const address = await socketAddress(daemonAddress, namespace, namespace);
  const pid = await oneAtATime(address, async () => {
    if ((await liveShimPid(address)) !== undefined) return undefined;
    await Deno.remove(socketPath(address)).catch(() => {}); // stale: nothing answered there
    return await spares.startAhead({ namespace, socket: address, address: daemonAddress, debug: false });
  });
  return pid === undefined ? undefined : address;
}

async function spawnServer(
  flags: ShimStartRequest,
  bundle: string,
  address: string,
  env: Record<string, string>,
): Promise<number> {
  const args = ["-namespace", flags.namespace, "-id", flags.id, "-address", flags.address];
  if (flags.debug) args.push("-debug");
  args.push("-publish-binary", flags.publishBinary, "-bundle", bundle, "-socket", address);
  const cmd = selfCommand(args);
  // stdout is a pipe the shim writes one line to once it listens, then closes (containerd reads start's
  // output until every holder of its pipe has closed it, so the shim must not keep ours); stderr null.
  const child = spawnClean(cmd.program, {
    args: cmd.args,
    cwd: bundle,
    env: { ...env, ...shimV8Env() },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  });
  child.unref();
  let exitedAt: number | undefined;
  child.status.then(() => exitedAt = Date.now(), () => exitedAt = Date.now());
  const deadline = Date.now() + START_TIMEOUT_MS;
  if (await readyLine(child.stdout, START_TIMEOUT_MS)) return child.pid;
  // No line: it lost a race for the socket to another shim (and exited), or is older than the line.
  while (Date.now() < deadline) {
    const pid = await liveShimPid(address, 1_000);
    if (pid !== undefined) return pid;
    // A shim that lost a race for the socket exits at once: the winner answers soon after.
    if (exitedAt !== undefined && Date.now() - exitedAt > 1_000) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  throw new Error(
    `Shim for ${flags.namespace}/${flags.id} did not listen on ${address} within ${START_TIMEOUT_MS} ms`,
  );
}

/** Whether the shim's first line on stdout says it listens; false at end of output or after timeoutMs. */
export async function readyLine(stdout: ReadableStream<Uint8Array>, timeoutMs: number): Promise<boolean> {
  const reader = stdout.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), timeoutMs));
  try {
    let text = "";
    while (!text.includes("\n")) {
      const got = await Promise.race([reader.read(), late]);
      if (got === "late" || got.done) return false;
      text += new TextDecoder().decode(got.value);
    }
    return text.startsWith("ready");
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

/** Moves the shim into options.shim_cgroup when the runtime options name one (first shim of a group only). */
function joinShimCgroup(pid: number, raw: Uint8Array): void {
  if (raw.length === 0) return;
  let cgroup = "";
  try {
    const any = fromBinary(AnySchema, raw);
    if (any.typeUrl.endsWith("containerd.runc.v1.Options")) {
      cgroup = fromBinary(OptionsSchema, any.value).shimCgroup;
    }
  } catch {
    return;
  }
  if (!cgroup) return;
  const roots = (() => {
    try {
      Deno.statSync("/sys/fs/cgroup/cgroup.controllers");
      return ["/sys/fs/cgroup"];
    } catch {
      return [...Deno.readDirSync("/sys/fs/cgroup")].filter((e) => e.isDirectory).map((e) =>
        `/sys/fs/cgroup/${e.name}`
      );
    }
  })();
  for (const r of roots) {
    try {
      Deno.writeTextFileSync(`${r}${cgroup}/cgroup.procs`, String(pid));
    } catch { /* controller without that cgroup */ }
  }
}
