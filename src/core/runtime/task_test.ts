import assert from "node:assert/strict";
import { isNotFound } from "../../base/errors.ts";
import { Task } from "../../gen/runtime/task/v2/shim_pb.ts";
import { TtrpcClient, TtrpcServer } from "../../ttrpc/mod.ts";
import { Bundle } from "./bundle.ts";
import { ShimConnection, ShimTask } from "./task.ts";

Deno.test("ShimTask: a call in flight when the task is deleted and its idle shim's connection closed fails NotFound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-shimtask-" });
  const server = new TtrpcServer();
  let killed!: () => void;
  const killArrived = new Promise<void>((r) => killed = r);
  server.register(Task, {
    // A kill whose answer comes after the TaskExit it caused: it never answers here.
    async kill(_req, ctx) {
      killed();
      await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      return {};
    },
  });
  server.listen(`${dir}/shim.sock`);
  const client = await TtrpcClient.connect(`unix://${dir}/shim.sock`);
  try {
    const conn = new ShimConnection(`unix://${dir}/shim.sock`, client);
    const task = new ShimTask(new Bundle(dir, "ns1", "c1"), { runtime: "r", command: ["x"], conn });
    const kill = task.kill(9);
    await killArrived;
    // The TaskExit handler deletes the task; the manager closes the now idle shim's connection.
    task.markDeleted();
    client.close();
    await assert.rejects(kill, (err) => isNotFound(err) && /c1 not found/.test((err as Error).message));
    await assert.rejects(task.state(), (err) => isNotFound(err));
  } finally {
    client.close();
    await server.close({ graceMs: 100 });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShimTask: a closed connection under a live task stays an error of its own, not NotFound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-shimtask-" });
  const server = new TtrpcServer();
  server.register(Task, {});
  server.listen(`${dir}/shim.sock`);
  const client = await TtrpcClient.connect(`unix://${dir}/shim.sock`);
  try {
    const conn = new ShimConnection(`unix://${dir}/shim.sock`, client);
    const task = new ShimTask(new Bundle(dir, "ns1", "c1"), { runtime: "r", command: ["x"], conn });
    client.close();
    await assert.rejects(task.kill(9), (err) => !isNotFound(err));
  } finally {
    await server.close({ graceMs: 100 });
    await Deno.remove(dir, { recursive: true });
  }
});
