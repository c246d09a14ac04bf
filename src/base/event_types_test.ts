import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { TaskExitSchema } from "../gen/events/task_pb.ts";
import { eventSchemas, schemaDecoder } from "./event_types.ts";

Deno.test("schemaDecoder() gives an event's fields under their proto names, whatever the type URL prefix", () => {
  const decode = schemaDecoder(eventSchemas());
  const value = toBinary(TaskExitSchema, create(TaskExitSchema, { containerId: "c1", exitStatus: 7 }));
  const want = { container_id: "c1", exit_status: 7 };
  assert.deepEqual(decode(create(AnySchema, { typeUrl: "containerd.events.TaskExit", value })), want);
  assert.deepEqual(
    decode(create(AnySchema, { typeUrl: "types.containerd.io/containerd.events.TaskExit", value })),
    want,
  );
});

Deno.test("schemaDecoder() gives undefined for an unknown type or a payload that does not decode", () => {
  const decode = schemaDecoder([TaskExitSchema]);
  assert.equal(
    decode(create(AnySchema, { typeUrl: "containerd.events.Nope", value: new Uint8Array() })),
    undefined,
  );
  assert.equal(
    decode(create(AnySchema, { typeUrl: "containerd.events.TaskExit", value: Uint8Array.of(0xff) })),
    undefined,
  );
});
