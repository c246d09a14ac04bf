/**
 * The `start` and `delete` actions of the shim command line (containerd's shim manager).
 *
 * start: joins or starts the shim of the container's group (src/core/runtime/shim_group.ts) and prints
 * its address.
 *
 * delete: cleanup after a dead shim: runc delete --force, rootfs unmounted, a DeleteResponse on stdout.
 */

import { timestampFromNanos } from "../base/timestamps.ts";
import { now } from "../base/clock.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { unmountAll } from "../core/mount/mod.ts";
import { DeleteResponseSchema } from "../gen/runtime/task/v2/shim_pb.ts";
import { DEFAULT_RUNC_ROOT, type RuntimeOptions } from "./container.ts";
import type { ShimFlags } from "./flags.ts";
import { startOrReuseShim } from "../core/runtime/shim_group.ts";
import { Runc } from "./runc.ts";

async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of Deno.stdin.readable) chunks.push(c);
  return new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
}

export async function startShim(flags: ShimFlags): Promise<number> {
  const opts = await readStdin().catch(() => new Uint8Array());
  const address = await startOrReuseShim(flags, { options: opts });
  // containerd 1.6 reads the plain address from stdout.
  await Deno.stdout.write(new TextEncoder().encode(address));
  return 0;
}

function readOptions(bundle: string, namespace: string): RuntimeOptions | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${bundle}/options.json`)) as RuntimeOptions;
  } catch {
    const binary = (() => {
      try {
        return Deno.readTextFileSync(`${bundle}/runtime`).trim();
      } catch {
        return "runc";
      }
    })();
    return {
      binaryName: binary || "runc",
      root: `${DEFAULT_RUNC_ROOT}/${namespace}`,
      systemdCgroup: false,
      noPivotRoot: false,
      noNewKeyring: false,
      criuImagePath: "",
      criuWorkPath: "",
    };
  }
}

export async function deleteShim(flags: ShimFlags): Promise<number> {
  const bundle = flags.bundle || Deno.cwd();
  const options = readOptions(bundle, flags.namespace)!;
  const runc = new Runc({
    binary: options.binaryName,
    root: options.root,
    systemdCgroup: options.systemdCgroup,
    extraArgs: options.runtimeArgs,
  });
  try {
    await runc.delete(flags.id, { force: true, timeoutMs: 5_000 });
  } catch (err) {
    console.error(`Cannot delete runtime container ${flags.id}: ${(err as Error).message}`);
  }
  // runc makes its root even to delete nothing; the namespace's folder goes once it is empty, as a
  // serving shim leaves none after its last container (another container's state keeps it).
  await Deno.remove(options.root).catch(() => {});
  try {
    unmountAll(`${bundle}/rootfs`);
  } catch (err) {
    console.error(`Cannot unmount ${bundle}/rootfs: ${(err as Error).message}`);
  }
  let pid = 0;
  try {
    pid = Number(Deno.readTextFileSync(`${bundle}/init.pid`).trim()) || 0;
  } catch { /* never created */ }
  const res = create(DeleteResponseSchema, {
    pid,
    exitStatus: 128 + 9,
    exitedAt: timestampFromNanos(now()),
  });
  await Deno.stdout.write(toBinary(DeleteResponseSchema, res));
  return 0;
}
