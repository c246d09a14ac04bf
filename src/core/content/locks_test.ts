import assert from "node:assert/strict";
import { SweepGate } from "./locks.ts";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("SweepGate.exclusive() waits for the writes under way and holds new ones until it is done", async () => {
  const gate = new SweepGate();
  const order: string[] = [];
  const first = deferred();
  const write1 = gate.shared(async () => {
    order.push("write1 start");
    await first.promise;
    order.push("write1 end");
  });
  const sweep = gate.exclusive(async () => {
    order.push("sweep");
    await Promise.resolve();
    order.push("sweep end");
  });
  await Promise.resolve();
  const write2 = gate.shared(() => Promise.resolve(void order.push("write2")));
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, ["write1 start"]);
  first.resolve();
  await Promise.all([write1, sweep, write2]);
  assert.deepEqual(order, ["write1 start", "write1 end", "sweep", "sweep end", "write2"]);
});

Deno.test("SweepGate lets writes run together, and releases after a step that throws", async () => {
  const gate = new SweepGate();
  let inside = 0;
  let most = 0;
  const write = () =>
    gate.shared(async () => {
      most = Math.max(most, ++inside);
      await new Promise((r) => setTimeout(r, 2));
      inside--;
    });
  await Promise.all([write(), write(), write()]);
  assert.equal(most, 3);
  await assert.rejects(gate.exclusive(() => Promise.reject(new Error("boom"))), /boom/);
  await gate.shared(() => Promise.resolve());
});
