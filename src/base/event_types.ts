import type { DescMessage } from "@bufbuild/protobuf";
import * as containerEvents from "../gen/events/container_pb.ts";
import * as contentEvents from "../gen/events/content_pb.ts";
import * as imageEvents from "../gen/events/image_pb.ts";
import * as namespaceEvents from "../gen/events/namespace_pb.ts";
import * as snapshotEvents from "../gen/events/snapshot_pb.ts";
import * as taskEvents from "../gen/events/task_pb.ts";

/** Every containerd event message, for decoding payloads (filters, `berth events`). */
export function eventSchemas(): DescMessage[] {
  const out: DescMessage[] = [];
  for (
    const mod of [namespaceEvents, containerEvents, contentEvents, imageEvents, snapshotEvents, taskEvents]
  ) {
    for (const value of Object.values(mod)) {
      if (typeof value === "object" && value !== null && (value as DescMessage).kind === "message") {
        out.push(value as DescMessage);
      }
    }
  }
  return out;
}
