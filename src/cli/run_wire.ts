/**
 * berth.run.v1's RunRequest and RunEvent (proto/berth/run/v1/run.proto) on the wire, written and read
 * with protobuf-es's BinaryWriter and BinaryReader alone. The generated schemas (src/gen/berth/run/v1)
 * need the protobuf runtime, which boots descriptor.proto when it loads: most of what the one-call
 * `ctr run` would pay before its one call. run_wire_test.ts holds these equal to the generated schemas,
 * field by field, both ways.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { ContainerFlagsSchema, RunEvent, RunRequestSchema } from "../gen/berth/run/v1/run_pb.ts";

export type RunRequestInit = MessageInitShape<typeof RunRequestSchema>;
type FlagsInit = MessageInitShape<typeof ContainerFlagsSchema>;

/** The event of one RunEvent; `case` undefined for an event this CLI does not know. */
export type RunEventValue = RunEvent["event"];

export function encodeRunRequest(req: RunRequestInit): Uint8Array {
  const w = new BinaryWriter();
  text(w, 1, req.image);
  text(w, 2, req.id);
  texts(w, 3, req.args);
  if (req.flags !== undefined) {
    w.tag(4, WireType.LengthDelimited).fork();
    encodeFlags(w, req.flags);
    w.join();
  }
  text(w, 5, req.stdin);
  text(w, 6, req.stdout);
  text(w, 7, req.stderr);
  flag(w, 8, req.detach);
  flag(w, 9, req.remove);
  return w.finish();
}

function encodeFlags(w: BinaryWriter, f: FlagsInit): void {
  texts(w, 1, f.env);
  if (f.envFile !== undefined) w.tag(2, WireType.LengthDelimited).string(f.envFile);
  texts(w, 3, f.mount);
  texts(w, 4, f.label);
  texts(w, 5, f.annotation);
  text(w, 6, f.memoryLimit);
  text(w, 7, f.cpus);
  text(w, 8, f.cpuShares);
  text(w, 9, f.pidsLimit);
  text(w, 10, f.snapshotter);
  text(w, 11, f.runtime);
  flag(w, 12, f.netHost);
  text(w, 13, f.hostname);
  text(w, 14, f.user);
  text(w, 15, f.cwd);
  flag(w, 16, f.readOnly);
  texts(w, 17, f.capAdd);
  texts(w, 18, f.capDrop);
  if (f.cgroup !== undefined) w.tag(19, WireType.LengthDelimited).string(f.cgroup);
}

/** A proto3 string field: left out when empty. */
function text(w: BinaryWriter, field: number, value: string | undefined): void {
  if (value) w.tag(field, WireType.LengthDelimited).string(value);
}

function texts(w: BinaryWriter, field: number, values: readonly string[] | undefined): void {
  for (const v of values ?? []) w.tag(field, WireType.LengthDelimited).string(v);
}

/** A proto3 bool field: left out when false. */
function flag(w: BinaryWriter, field: number, value: boolean | undefined): void {
  if (value) w.tag(field, WireType.Varint).bool(true);
}

/** One RunEvent; the last of its oneof's fields on the wire wins, as protobuf's merge rules say. */
export function decodeRunEvent(bytes: Uint8Array): RunEventValue {
  const r = new BinaryReader(bytes);
  let event: RunEventValue = { case: undefined };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      event = { case: "imageNotReady", value: r.string() };
    } else if (field === 2 && wireType === WireType.Varint) event = { case: "started", value: r.uint32() };
    else if (field === 3 && wireType === WireType.Varint) event = { case: "exited", value: r.uint32() };
    else r.skip(wireType, field);
  }
  return event;
}
