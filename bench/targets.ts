/**
 * The daemons under test. Each start gets its own temp root, state and socket, so runs never share
 * state, and every daemon started here is stopped (with its process tree) by stop() or stopAll().
 */

import { DENO_RUN_FLAGS } from "../src/base/self.ts";
import { isAlive, processTree } from "./procfs.ts";
import { killShims } from "./shims.ts";
import { sleep } from "./sleep.ts";

export type TargetId = "containerd" | "berth";

/**
 * The containerd namespace every group uses, private to this benchmark process: containers' cgroups are
 * `/<namespace>/<id>` on both daemons, so clean-up can remove the whole namespace's cgroups safely.
 */
export const NAMESPACE = `berth-bench-${Deno.pid}`;

export interface Daemon {
  readonly target: TargetId;
  readonly pid: number;
  readonly socket: string;
  /** The daemon's temp dir: root, state, config and log. */
  readonly dir: string;
  /** performance.now() taken just before the spawn. */
  readonly spawnedAt: number;
  /** Settles when the daemon process exits. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** The last lines the daemon wrote to stdout/stderr, for error messages. */
  logTail(lines?: number): Promise<string>;
  /**
   * SIGTERM, then SIGKILL after 3 s, then its leftover descendants, its shims (and their containers),
   * the benchmark namespace's cgroups and every mount under the temp dir; removes the temp dir. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Stops the daemon process (SIGTERM, as a host shutting down does) and starts it again on the same
   * root, state and config: a reboot's start. This Daemon is spent then (its stop() does nothing); the
   * returned one owns the temp dir. For daemons that started no containers.
   */
  restart(): Promise<Daemon>;
}

export interface StartOptions {
  /**
   * TOML appended to the daemon's config file (both read containerd's version 2 format), e.g. a
   * `[plugins."io.containerd.grpc.v1.cri"]` section.
   */
  readonly config?: string;
}

export interface Target {
  readonly id: TargetId;
  /** Why this target cannot run on this machine, or undefined when it can. */
  unavailableReason(): Promise<string | undefined>;
  start(options?: StartOptions): Promise<Daemon>;
  /** argv that runs the target's own CLI (Berth's), or undefined when it has none besides ctr. */
  cli(): Promise<string[] | undefined>;
  /** Removes what the target kept across starts (e.g. a private copy of the runtime). */
  dispose(): Promise<void>;
}

const live = new Set<Daemon>();

/** Stops every daemon still running: for finally blocks and signal handlers. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live].map((d) => d.stop()));
}

async function spawnDaemon(
  target: TargetId,
  dir: string,
  socket: string,
  cmd: { program: string; args: string[] },
  options: { appendLog?: boolean } = {},
): Promise<Daemon> {
  const logPath = `${dir}/daemon.log`;
  const log = await Deno.open(logPath, {
    write: true,
    create: true,
    ...(options.appendLog ? { append: true } : { truncate: true }),
  });
  const spawnedAt = performance.now();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd.program, {
      args: cmd.args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: dir,
    }).spawn();
  } catch (err) {
    log.close();
    await Deno.remove(dir, { recursive: true });
    throw new Error(`Cannot start ${target} (${cmd.program}): ${(err as Error).message}`);
  }
  // Both streams go to one file; the writer is shared, so pipe chunk by chunk rather than pipeTo.
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      try {
        await log.write(chunk);
      } catch { /* log closed during stop: drop the rest */ }
    }
  };
  const pumps = Promise.allSettled([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status;
  let stopping: Promise<void> | undefined;

  const daemon: Daemon = {
    target,
    pid: child.pid,
    socket,
    dir,
    spawnedAt,
    exited,
    async logTail(lines = 15) {
      const text = await Deno.readTextFile(logPath).catch(() => "");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    },
    stop() {
      stopping ??= (async () => {
        const tree = isAlive(child.pid) ? await processTree(child.pid) : [];
        const done = exited.then(() => true);
        try {
          child.kill("SIGTERM");
        } catch { /* already exited */ }
        const graceful = await Promise.race([done, sleep(3_000).then(() => false)]);
        if (!graceful) {
          try {
            child.kill("SIGKILL");
          } catch { /* exited meanwhile */ }
          await exited;
        }
        // Helpers the daemon started (shims, runc) must not outlive the benchmark. Shims first, by
        // command line: that also removes their sockets, which a shim killed as part of the tree leaves.
        await killShims(socket).catch(() => {});
        for (const p of tree.slice(1).reverse()) {
          if (!isAlive(p)) continue;
          try {
            Deno.kill(p, "SIGKILL");
          } catch { /* gone */ }
        }
        await removeCgroups(NAMESPACE).catch(() => {});
        // Both shims keep runc's state under a folder per namespace; containerd's never removes it.
        for (const runcRoot of [`/run/containerd/runc/${NAMESPACE}`, `/run/berth/runc/${NAMESPACE}`]) {
          await Deno.remove(runcRoot).catch(() => {});
        }
        await unmountUnder(dir).catch(() => {});
        await pumps;
        log.close();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        live.delete(daemon);
      })();
      return stopping;
    },
    async restart() {
      if (stopping) throw new Error(`${target} daemon is stopped or restarted already`);
      stopping = Promise.resolve();
      live.delete(daemon);
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      if (!await Promise.race([exited.then(() => true), sleep(3_000).then(() => false)])) {
        child.kill("SIGKILL");
        await exited;
      }
      await pumps;
      log.close();
      return await spawnDaemon(target, dir, socket, cmd, { appendLog: true });
    },
  };
  live.add(daemon);
  return daemon;
}

/** Mount points (deepest first) at or below `dir`, from the text of /proc/self/mountinfo. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const base = dir.replace(/\/+$/, "");
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    // mountinfo escapes space, tab, newline and backslash as octal.
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === base || point.startsWith(`${base}/`)) out.push(point);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Detaches every mount under dir (container rootfs, snapshots) so removing dir cannot walk into one. */
export async function unmountUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 3; pass++) {
    const points = mountsUnder(await Deno.readTextFile("/proc/self/mountinfo"), dir);
    if (points.length === 0) return;
    for (const p of points) {
      await new Deno.Command("umount", { args: ["-l", p], stdout: "null", stderr: "null" }).output();
    }
  }
}

/** Kills what is left in the cgroups of namespace `ns` (v1 and v2 hierarchies) and removes them. */
export async function removeCgroups(ns: string): Promise<void> {
  const roots = ["/sys/fs/cgroup"];
  for await (const e of Deno.readDir("/sys/fs/cgroup")) {
    if (e.isDirectory) roots.push(`/sys/fs/cgroup/${e.name}`);
  }
  for (const root of roots) {
    const top = `${root}/${ns}`;
    try {
      await Deno.stat(top);
    } catch {
      continue;
    }
    const dirs: string[] = [];
    const walk = async (d: string) => {
      dirs.push(d);
      for await (const e of Deno.readDir(d)) if (e.isDirectory) await walk(`${d}/${e.name}`);
    };
    await walk(top);
    for (const d of dirs.reverse()) {
      for (let attempt = 0; attempt < 50; attempt++) {
        const procs = await Deno.readTextFile(`${d}/cgroup.procs`).catch(() => "");
        for (const p of procs.split("\n").filter((x) => x !== "")) {
          try {
            Deno.kill(Number(p), "SIGKILL");
          } catch { /* gone */ }
        }
        try {
          await Deno.remove(d);
          break;
        } catch {
          await sleep(20);
        }
      }
    }
  }
}

/** The executable `program` on PATH, or undefined. */
export async function which(program: string): Promise<string | undefined> {
  for (const d of (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const p = `${d}/${program}`;
    try {
      const st = await Deno.stat(p);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

/** Debian's containerd with a config that confines root, state, sockets and /opt to the temp dir. */
export function containerdTarget(options: { binary?: string } = {}): Target {
  let binary = options.binary;
  return {
    id: "containerd",
    async unavailableReason() {
      binary ??= await which("containerd");
      return binary ? undefined : "containerd is not installed (apt-get install containerd)";
    },
    async start(options: StartOptions = {}) {
      binary ??= await which("containerd") ?? "containerd";
      const dir = await Deno.makeTempDir({ prefix: "berth-bench-containerd-" });
      const socket = `${dir}/containerd.sock`;
      // Defaults everywhere else (CRI included): the baseline is containerd as Debian ships it.
      const config = [
        "version = 2",
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        "[grpc]",
        `  address = "${socket}"`,
        "[ttrpc]",
        `  address = "${socket}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/opt"`,
        options.config ?? "",
      ].join("\n");
      await Deno.writeTextFile(`${dir}/config.toml`, config);
      return await spawnDaemon("containerd", dir, socket, {
        program: binary,
        args: ["--config", `${dir}/config.toml`],
      });
    },
    cli: () => Promise.resolve(undefined),
    async dispose() {},
  };
}

/**
 * Berth's daemon, run by deno from a module (the bundle dist/bundle/main.js, or main.ts from source) or,
 * given `binary`, a compiled build. With deno it runs a private copy of the deno executable: the benchmark itself runs on deno, and
 * sharing the executable's pages with it would halve the daemon's PSS for free. Deno gets the flags the
 * daemon gives its own shims (DENO_RUN_FLAGS: lazy dynamic imports, as a compiled binary loads them).
 */
export function berthTarget(options: { main?: string; binary?: string } = {}): Target {
  const main = options.main ?? new URL("../main.ts", import.meta.url).pathname;
  let runtimeDir: string | undefined;
  const runtime = async (): Promise<string> => {
    if (runtimeDir === undefined) {
      runtimeDir = await Deno.makeTempDir({ prefix: "berth-bench-runtime-" });
      await Deno.copyFile(Deno.execPath(), `${runtimeDir}/deno`);
      await Deno.chmod(`${runtimeDir}/deno`, 0o755);
    }
    return `${runtimeDir}/deno`;
  };
  const command = async (args: string[]) =>
    options.binary
      ? { program: options.binary, args }
      : { program: await runtime(), args: ["run", ...DENO_RUN_FLAGS, "-A", main, ...args] };
  return {
    id: "berth",
    async unavailableReason() {
      const path = options.binary ?? main;
      try {
        await Deno.stat(path);
        return undefined;
      } catch {
        return `${path} does not exist`;
      }
    },
    async start(options: StartOptions = {}) {
      const dir = await Deno.makeTempDir({ prefix: "berth-bench-berth-" });
      const socket = `${dir}/berth.sock`;
      // An explicit config keeps a machine's /etc/berth/config.toml out of the figures.
      await Deno.writeTextFile(`${dir}/config.toml`, `version = 2\n${options.config ?? ""}`);
      return await spawnDaemon(
        "berth",
        dir,
        socket,
        await command([
          "daemon",
          "--config",
          `${dir}/config.toml`,
          "--address",
          socket,
          "--root",
          `${dir}/root`,
          "--state",
          `${dir}/state`,
        ]),
      );
    },
    async cli() {
      return options.binary
        ? [options.binary]
        : [await runtime(), "run", ...DENO_RUN_FLAGS, "-A", "--quiet", main];
    },
    async dispose() {
      if (runtimeDir !== undefined) await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
      runtimeDir = undefined;
    },
  };
}
