/** Test helpers for the shim's runtime tests: busybox bundles and per-test runc state roots. */

import assert from "node:assert/strict";
import { Runc } from "./runc.ts";

/** A bundle whose rootfs is busybox alone, config from `<runtime> spec`, running `busybox sleep 30`. */
export async function makeBundle(
  binary: string,
  dir: string,
  args = ["/bin/busybox", "sleep", "30"],
): Promise<string> {
  const bundle = `${dir}/bundle`;
  await Deno.mkdir(`${bundle}/rootfs/bin`, { recursive: true });
  await Deno.copyFile("/bin/busybox", `${bundle}/rootfs/bin/busybox`);
  for (const tool of ["sh", "sleep", "cat", "echo"]) {
    await Deno.symlink("busybox", `${bundle}/rootfs/bin/${tool}`);
  }
  const spec = await new Deno.Command(binary, { args: ["spec"], cwd: bundle, stderr: "piped" }).output();
  assert.ok(spec.success, new TextDecoder().decode(spec.stderr));
  const config = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
  config.process.args = args;
  config.process.terminal = false;
  await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(config, null, 2));
  return bundle;
}

export interface Fixture {
  runc: Runc;
  dir: string;
  bundle: string;
  id: string;
}

/** A per-test state root and bundle; the container is force-deleted and everything removed afterwards. */
export async function withContainer(binary: string, fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `berth-${binary}-` });
  const id = `c${crypto.randomUUID().slice(0, 8)}`;
  const runc = new Runc({ binary, root: `${dir}/state`, log: `${dir}/runc.log` });
  try {
    const bundle = await makeBundle(binary, dir);
    await fn({ runc, dir, bundle, id });
  } finally {
    await runc.delete(id, { force: true }).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

export async function pidAlive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}
