import { type DescMessage, fromBinary, toJson } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
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

/** Decodes an event payload into its fields: for filters (`event.container_id==c1`) and `berth events`. */
export type PayloadDecoder = (event: Any) => Record<string, unknown> | undefined;

/** A decoder over a set of known event schemas, keyed by their bare type names. */
export function schemaDecoder(schemas: readonly DescMessage[]): PayloadDecoder {
  const byName = new Map(schemas.map((s) => [s.typeName, s]));
  return (event) => {
    const name = event.typeUrl.replace(/^.*\//, "");
    const schema = byName.get(name);
    if (!schema) return undefined;
    try {
      return toJson(schema, fromBinary(schema, event.value), { useProtoFieldName: true }) as Record<
        string,
        unknown
      >;
    } catch {
      return undefined;
    }
  };
}
