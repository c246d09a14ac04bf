/**
 * Interop with a real containerd shim (Debian's containerd-shim-runc-v2, containerd 1.6): our client drives
 * its Task service, and our server plays the daemon's Events endpoint it is given in TTRPC_ADDRESS.
 */

import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { DeleteResponseSchema, Task } from "../gen/runtime/task/v2/shim_pb.ts";
import { Events } from "../gen/services/ttrpc/events/v1/events_pb.ts";
import {
  Code,
  createTtrpcClient,
  NAMESPACE_METADATA_KEY,
  socketPath,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
} from "./mod.ts";

const SHIM = "/usr/bin/containerd-shim-runc-v2";
const NS = "berth-ttrpc-test";

async function shimAction(
  bundle: string,
  id: string,
  address: string,
  action: string,
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(SHIM, {
    args: ["-namespace", NS, "-address", address, "-publish-binary", "/bin/true", "-id", id, action],
    cwd: bundle,
    env: { TTRPC_ADDRESS: `${address}.ttrpc`, GOMAXPROCS: "2" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function isGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie waiting for a non-reaping init counts as gone: it runs no code any more.
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

Deno.test({
  name:
    "TtrpcClient drives containerd-shim-runc-v2: Connect, State of unknown id is NotFound, Shutdown, delete",
  ignore: !(await Deno.stat(SHIM).then(() => true, () => false)),
  async fn() {
    // The shim makes these system folders; the ones this test brought into being go again (if left empty).
    const systemDirs = [
      "/run/containerd/s",
      `/run/containerd/runc/${NS}`,
      "/run/containerd/runc",
      "/run/containerd",
    ];
    const preexisting = new Set(systemDirs.filter((d) => exists(d)));
    const dir = await Deno.makeTempDir({ prefix: "berth-shim-" });
    const id = `t${crypto.randomUUID().slice(0, 8)}`;
    const bundle = `${dir}/${id}`;
    const address = `${dir}/containerd.sock`;
    const events = new TtrpcServer();
    events.register(Events, { forward: () => ({}) });
    events.listen(`${address}.ttrpc`);
    let shimAddress = "";
    let shimPid = 0;
    let logFifo: Deno.FsFile | undefined;
    try {
      await Deno.mkdir(bundle);
      await Deno.writeTextFile(
        `${bundle}/config.json`,
        JSON.stringify({ ociVersion: "1.0.2", annotations: {} }),
      );
      // `delete` reads the runtime binary name the shim records at Create time.
      await Deno.writeTextFile(`${bundle}/runtime`, "runc");
      // The shim writes its log to a fifo named "log" in its working dir that the daemon creates and reads.
      const mk = await new Deno.Command("mkfifo", { args: [`${bundle}/log`] }).output();
      assert.ok(mk.success);
      logFifo = await Deno.open(`${bundle}/log`, { read: true, write: true });

      const start = await shimAction(bundle, id, address, "start");
      assert.ok(start.success, new TextDecoder().decode(start.stderr));
      shimAddress = new TextDecoder().decode(start.stdout).trim();
      assert.match(shimAddress, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);

      using client = await TtrpcClient.connect(shimAddress, {
        metadata: { [NAMESPACE_METADATA_KEY]: NS },
        timeoutMs: 5000,
      });
      const task = createTtrpcClient(Task, client);
      const connected = await task.connect({ id });
      shimPid = connected.shimPid;
      assert.ok(shimPid > 0);
      assert.equal(connected.taskPid, 0);

      const state = await task.state({ id: "no-such-task" }).then(() => undefined, (e) => e);
      assert.ok(state instanceof TtrpcError, String(state));
      assert.equal(state.code, Code.notFound);
      assert.equal(state.kind, "not_found");
      assert.match(state.message, /not created/);

      const pids = await task.pids({ id: "no-such-task" }).then(() => undefined, (e) => e);
      assert.ok(pids instanceof TtrpcError);
      assert.equal(pids.code, Code.notFound);

      // The shim exits while answering Shutdown, so the answer may be lost with the connection.
      await task.shutdown({ id, now: true }).catch((e) => {
        if (!(e instanceof TtrpcError && e.code === Code.unavailable)) throw e;
      });
      await client.closed;
      for (let i = 0; i < 100 && !isGone(shimPid); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(isGone(shimPid), `shim ${shimPid} still running after Shutdown`);

      const del = await shimAction(bundle, id, address, "delete");
      assert.ok(del.success, new TextDecoder().decode(del.stderr));
      const res = fromBinary(DeleteResponseSchema, del.stdout);
      assert.equal(res.exitStatus, 128 + 9);
    } finally {
      if (shimPid > 0 && !isGone(shimPid)) {
        try {
          Deno.kill(shimPid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      logFifo?.close();
      if (shimAddress) await Deno.remove(socketPath(shimAddress)).catch(() => {});
      await events.close({ graceMs: 100 });
      await Deno.remove(dir, { recursive: true });
      for (const d of systemDirs) if (!preexisting.has(d)) await Deno.remove(d).catch(() => {});
    }
  },
});
