import assert from "node:assert/strict";
import { NamespaceCreateSchema } from "../../gen/events/namespace_pb.ts";
import { TaskExitSchema } from "../../gen/events/task_pb.ts";
import { parseFilters } from "../filters/mod.ts";
import { EventBus } from "./mod.ts";
import { schemaDecoder } from "../../base/event_types.ts";
import { now } from "../../base/clock.ts";

const bus = () => new EventBus({ decode: schemaDecoder([NamespaceCreateSchema, TaskExitSchema]) });

Deno.test("EventBus delivers published events in order with bare type URLs", async () => {
  const b = bus();
  const ac = new AbortController();
  const sub = b.subscribe({ signal: ac.signal });
  b.publish("default", "/namespaces/create", NamespaceCreateSchema, { name: "a" });
  b.publish("default", "/namespaces/create", NamespaceCreateSchema, { name: "b" });
  const first = await sub.next();
  const second = await sub.next();
  assert.equal(first.value!.event.typeUrl, "containerd.events.NamespaceCreate");
  assert.equal(first.value!.topic, "/namespaces/create");
  assert.ok(second.value!.event.value.length > 0);
  ac.abort();
  assert.equal((await sub.next()).done, true);
  assert.equal(b.subscriberCount, 0);
});

Deno.test("EventBus filters on topic, namespace and event fields like containerd", async () => {
  const b = bus();
  const ac = new AbortController();
  const sub = b.subscribe({
    filter: parseFilters(['topic=="/tasks/exit",event.container_id=="c2"', "namespace==other"]),
    signal: ac.signal,
  });
  b.publish("default", "/tasks/exit", TaskExitSchema, { containerId: "c1", exitStatus: 1 });
  b.publish("default", "/tasks/exit", TaskExitSchema, { containerId: "c2", exitStatus: 7 });
  b.publish("other", "/namespaces/create", NamespaceCreateSchema, { name: "x" });
  const got = [(await sub.next()).value!, (await sub.next()).value!];
  assert.deepEqual(got.map((e) => [e.namespace, e.topic]), [["default", "/tasks/exit"], [
    "other",
    "/namespaces/create",
  ]]);
  ac.abort();
});

Deno.test("EventBus rejects malformed topics", () => {
  assert.throws(
    () => bus().publish("default", "no-slash", NamespaceCreateSchema, { name: "a" }),
    /Invalid event topic/,
  );
  assert.throws(
    () => bus().publish("default", "/a//b", NamespaceCreateSchema, { name: "a" }),
    /Invalid event topic/,
  );
});

Deno.test("EventBus stamps a published event to the nanosecond, between the times around the call", async () => {
  const b = bus();
  const ac = new AbortController();
  const sub = b.subscribe({ signal: ac.signal });
  const before = now();
  b.publish("default", "/namespaces/create", NamespaceCreateSchema, { name: "a" });
  const after = now();
  const env = (await sub.next()).value!;
  assert.equal(typeof env.timestamp, "bigint");
  assert.ok(env.timestamp >= before && env.timestamp <= after, `${before} <= ${env.timestamp} <= ${after}`);
  ac.abort();
});
