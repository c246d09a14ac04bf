/**
 * Shared set-up of the containers-and-tasks tests: a real registry with the busybox fixture, a Berth
 * daemon whose `io.containerd.runc.v2` runs Debian's containerd-shim-runc-v2 (the `shim_binaries` key)
 * until Berth's own shim lands, and Debian's `ctr` as the client.
 */
import assert from "node:assert/strict";
import { startRegistry, type TestRegistry } from "./registry.ts";
import { buildFixtureImages, pushFixtures } from "../fixtures/images.ts";
import { startDaemon, type TestDaemon, testDaemonConfig } from "./daemon.ts";

export const RUNC_SHIM = "/usr/bin/containerd-shim-runc-v2";
export const hasShim = await Deno.stat(RUNC_SHIM).then(() => true, () => false);

export const shimConfig = `version = 2
[plugins."io.containerd.runtime.v2.task"]
shim_binaries = { "io.containerd.runc.v2" = "${RUNC_SHIM}" }
`;

export interface Env {
  daemon: TestDaemon;
  registry: TestRegistry;
  image: string;
  ns: string;
  ctr(
    args: string[],
    options?: { timeoutMs?: number },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** The config and environment of a daemon running `shim` for io.containerd.runc.v2. */
export function daemonFor(shim: ShimKind): { config: string; env: Record<string, string> } {
  // Berth's shim exits at once when idle here, so tests can assert that no shim is left behind.
  return shim === "runc" ? { config: shimConfig, env: {} } : {
    config: testDaemonConfig,
    env: { BERTH_SHIM_IDLE_MS: "0" },
  };
}

export type ShimKind = "runc" | "berth";

/**
 * A registry holding the busybox fixture, a daemon with the chosen shim, and a pulled image;
 * `extraConfig` is appended to the daemon's config (e.g. CRI runtimes).
 */
export async function setup(
  dir?: string,
  shim: ShimKind = "runc",
  extraEnv: Record<string, string> = {},
  options: { extraConfig?: string } = {},
): Promise<Env> {
  const registry = await startRegistry();
  const fixtures = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
  try {
    const set = await buildFixtureImages(fixtures);
    const pushed = await pushFixtures(registry, set, { names: ["single"] });
    const base = daemonFor(shim);
    const config = base.config + (options.extraConfig ?? "");
    const daemon = await startDaemon({ ...base, config, env: { ...base.env, ...extraEnv }, dir }).catch(
      async (err) => {
        await registry.stop();
        throw err;
      },
    );
    const ns = `bt${crypto.randomUUID().slice(0, 8)}`;
    const env: Env = {
      daemon,
      registry,
      image: pushed.single.reference,
      ns,
      ctr: (args, options) => runCtr(daemon.address, ns, args, options?.timeoutMs),
    };
    try {
      let pull = await env.ctr(["images", "pull", "--plain-http", env.image], { timeoutMs: 60_000 });
      if (pull.code !== 0) {
        pull = await env.ctr(["images", "pull", "--plain-http", env.image], { timeoutMs: 60_000 });
      }
      assert.equal(pull.code, 0, pull.stderr);
    } catch (err) {
      await teardown(env);
      throw err;
    }
    return env;
  } finally {
    await Deno.remove(fixtures, { recursive: true });
  }
}

export async function runCtr(address: string, ns: string, args: string[], timeoutMs = 30_000) {
  const out = await new Deno.Command("ctr", {
    args: ["--address", address, "--namespace", ns, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Stops every task left in the namespace, removes the containers, the daemon and the registry. */
export async function teardown(
  env: Env,
  options: {
    keepDir?: boolean; /** Only clear the namespace: leave the daemon and registry running. */
    keepDaemon?: boolean;
  } = {},
): Promise<void> {
  try {
    const ls = await env.ctr(["task", "ls", "-q"]).catch(() => undefined);
    for (const id of ls?.stdout.split("\n").map((l) => l.trim()).filter(Boolean) ?? []) {
      await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
      await env.ctr(["task", "rm", "-f", id]).catch(() => {});
    }
    const cs = await env.ctr(["c", "ls", "-q"]).catch(() => undefined);
    for (const id of cs?.stdout.split("\n").map((l) => l.trim()).filter(Boolean) ?? []) {
      await env.ctr(["c", "rm", id]).catch(() => {});
    }
  } finally {
    if (!options.keepDaemon) {
      await env.daemon.stop();
      if (!options.keepDir) await Deno.remove(env.daemon.dir, { recursive: true }).catch(() => {});
      await env.registry.stop();
    }
    await Deno.remove(`/run/containerd/runc/${env.ns}`, { recursive: true }).catch(() => {});
    await removeNamespaceCgroups(env.ns);
  }
}

/**
 * runc removes a container's cgroup (`/<ns>/<id>`) but not the namespace's own (`/<ns>`), as with
 * containerd; a test's namespace is its own, so the test removes it (rmdir: only when empty).
 */
export async function removeNamespaceCgroups(ns: string): Promise<void> {
  let controllers: string[] = [];
  try {
    controllers = [...Deno.readDirSync("/sys/fs/cgroup")].filter((e) => e.isDirectory).map((e) => e.name);
  } catch { /* no cgroupfs */ }
  for (const dir of ["", ...controllers.map((c) => `${c}/`)]) {
    await Deno.remove(`/sys/fs/cgroup/${dir}${ns}`).catch(() => {});
  }
}

/** What a task may leave behind: its bundle, a mount under the daemon's folders, a cgroup, a shim. */
export async function leftovers(env: Env, id: string): Promise<string[]> {
  const out: string[] = [];
  const bundle = `${env.daemon.state}/io.containerd.runtime.v2.task/${env.ns}/${id}`;
  if (await Deno.stat(bundle).then(() => true, () => false)) out.push(`bundle ${bundle}`);
  const mounts = await Deno.readTextFile("/proc/self/mountinfo");
  for (const line of mounts.split("\n")) {
    const target = line.split(" ")[4];
    if (target?.startsWith(env.daemon.dir) && target.includes(`/${id}/`)) out.push(`mount ${target}`);
    if (target?.startsWith(env.daemon.dir) && target.endsWith(`/${id}/rootfs`)) out.push(`mount ${target}`);
  }
  for (const ctl of ["memory", "pids", "cpu", "unified"]) {
    const cg = `/sys/fs/cgroup/${ctl}/${env.ns}/${id}`;
    if (await Deno.stat(cg).then(() => true, () => false)) out.push(`cgroup ${cg}`);
  }
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (cmd.some((a) => a.includes("containerd-shim")) && cmd.includes(env.ns) && cmd.includes(id)) {
        out.push(`shim pid ${e.name}`);
      }
    } catch { /* exited */ }
  }
  return out;
}
