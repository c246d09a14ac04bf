import assert from "node:assert/strict";
import { AUTO_REMOVE_LABEL, type AutoRemoveHost, AutoRemover } from "./auto_remove.ts";

function host(containers: Record<string, { labels: Record<string, string>; live: boolean }>) {
  const removed: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const h: AutoRemoveHost = {
    labels: (ns, id) => containers[`${ns}/${id}`]?.labels,
    hasLiveTask: (ns, id) => Promise.resolve(containers[`${ns}/${id}`]?.live ?? false),
    labelled: (label) =>
      Object.entries(containers).filter(([, c]) => c.labels[label] !== undefined).map(([k]) => {
        const [ns, id] = k.split("/") as [string, string];
        return { ns, id };
      }),
    async remove(ns, id) {
      await gate;
      removed.push(`${ns}/${id}`);
      delete containers[`${ns}/${id}`];
    },
  };
  return { h, removed, release };
}

const log = { warn: () => {} };

Deno.test("AutoRemover removes a labelled container once its task exits, once for two exits, and leaves others", async () => {
  const { h, removed, release } = host({
    "ns/a": { labels: { [AUTO_REMOVE_LABEL]: "true" }, live: false },
    "ns/b": { labels: {}, live: false },
  });
  const r = new AutoRemover(h, { log });
  const first = r.taskExited("ns", "a");
  const second = r.taskExited("ns", "a");
  await r.taskExited("ns", "b");
  await r.taskExited("ns", "gone");
  release();
  await Promise.all([first, second]);
  assert.deepEqual(removed, ["ns/a"]);
});

Deno.test("AutoRemover.sweep() at start-up removes labelled containers whose task is gone, not live ones", async () => {
  const { h, removed, release } = host({
    "ns/exited": { labels: { [AUTO_REMOVE_LABEL]: "true" }, live: false },
    "ns/running": { labels: { [AUTO_REMOVE_LABEL]: "true" }, live: true },
    "other/plain": { labels: {}, live: false },
  });
  release();
  await new AutoRemover(h, { log }).sweep();
  assert.deepEqual(removed, ["ns/exited"]);
});

Deno.test("AutoRemover logs a failed removal instead of throwing", async () => {
  const warned: unknown[] = [];
  const r = new AutoRemover({
    labels: () => ({ [AUTO_REMOVE_LABEL]: "true" }),
    hasLiveTask: () => Promise.resolve(false),
    labelled: () => [],
    remove: () => Promise.reject(new Error("boom")),
  }, { log: { warn: (_msg, fields) => warned.push(fields) } });
  await r.taskExited("ns", "x");
  assert.deepEqual(warned, [{ namespace: "ns", id: "x", error: "boom" }]);
});
