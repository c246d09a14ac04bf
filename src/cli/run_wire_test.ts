import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { RunEventSchema, RunRequestSchema } from "../gen/berth/run/v1/run_pb.ts";
import { decodeRunEvent, encodeRunRequest, type RunRequestInit } from "./run_wire.ts";

const full: RunRequestInit = {
  image: "127.0.0.1:5000/busybox:1",
  id: "c1",
  args: ["sh", "-c", "echo ü"],
  flags: {
    env: ["A=1", "B=2"],
    envFile: "/tmp/env",
    mount: ["type=bind,src=/a,dst=/b"],
    label: ["l=1"],
    annotation: ["a=2"],
    memoryLimit: "1048576",
    cpus: "0.5",
    cpuShares: "512",
    pidsLimit: "10",
    snapshotter: "native",
    runtime: "io.containerd.runc.v2",
    netHost: true,
    hostname: "h",
    user: "1:2",
    cwd: "/w",
    readOnly: true,
    capAdd: ["CAP_NET_ADMIN"],
    capDrop: ["CAP_CHOWN", "CAP_KILL"],
    cgroup: "/x",
  },
  stdin: "/f/in",
  stdout: "/f/out",
  stderr: "/f/err",
  detach: true,
  remove: true,
};

Deno.test("a RunRequest with every field set is the generated schema's, byte for byte", () => {
  const bytes = encodeRunRequest(full);
  assert.deepStrictEqual(bytes, toBinary(RunRequestSchema, create(RunRequestSchema, full)));
  assert.deepStrictEqual(fromBinary(RunRequestSchema, bytes), create(RunRequestSchema, full));
});

Deno.test("a RunRequest of defaults keeps its optional fields' presence", () => {
  const req: RunRequestInit = { image: "img", id: "c", flags: { envFile: "", cgroup: "" } };
  const bytes = encodeRunRequest(req);
  assert.deepStrictEqual(bytes, toBinary(RunRequestSchema, create(RunRequestSchema, req)));
  const back = fromBinary(RunRequestSchema, bytes);
  assert.deepStrictEqual(back.flags?.envFile, "");
  assert.deepStrictEqual(back.flags?.cgroup, "");
  assert.deepStrictEqual(
    fromBinary(RunRequestSchema, encodeRunRequest({ image: "i", id: "c" })).flags,
    undefined,
  );
});

Deno.test("every RunEvent the daemon sends reads as the generated schema reads it", () => {
  const events = [
    { case: "imageNotReady", value: 'Image "x" is not unpacked for overlayfs' },
    { case: "started", value: 4242 },
    { case: "exited", value: 137 },
    { case: "exited", value: 0 },
    { case: undefined },
  ] as const;
  for (const event of events) {
    const bytes = toBinary(RunEventSchema, create(RunEventSchema, { event }));
    assert.deepStrictEqual(decodeRunEvent(bytes), fromBinary(RunEventSchema, bytes).event);
  }
});

Deno.test("a RunEvent's unknown fields are skipped", () => {
  const w = new BinaryWriter();
  w.tag(9, WireType.LengthDelimited).string("from a newer daemon");
  w.tag(3, WireType.Varint).uint32(2);
  w.tag(10, WireType.Varint).uint64(1n);
  assert.deepStrictEqual(decodeRunEvent(w.finish()), { case: "exited", value: 2 });
});
