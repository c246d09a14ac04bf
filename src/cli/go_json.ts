import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";

/**
 * A protobuf message as Go's json.MarshalIndent(v, "", "  ") prints the gogo-generated struct that ctr
 * holds: proto field names (the structs' json tags), fields in declaration order, zero values and empty
 * lists left out (`omitempty`), 64-bit integers as exact numbers, and a set but empty message as `{}`.
 */
export function goJson(schema: DescMessage, message: Message): string {
  return JSON.stringify(goValue(schema, message), null, 2);
}

type JsonValue = unknown;

/** JSON.rawJSON (V8 has it; TypeScript's lib does not yet): a bigint written with every digit. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

function goValue(schema: DescMessage, message: Message): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const fields = message as unknown as Record<string, unknown>;
  for (const f of schema.fields) {
    const v = fieldValue(f, fields[f.localName]);
    if (v !== undefined) out[f.name] = v;
  }
  return out;
}

function fieldValue(f: DescField, v: unknown): JsonValue {
  switch (f.fieldKind) {
    case "message":
      return v === undefined ? undefined : goValue(f.message, v as Message);
    case "list": {
      const xs = v as unknown[];
      if (xs.length === 0) return undefined;
      return f.listKind === "message"
        ? xs.map((x) => goValue(f.message, x as Message))
        : xs.map((x) => scalar(x) ?? zero(x));
    }
    case "map": {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) return undefined;
      return Object.fromEntries(
        entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map((
          [k, x],
        ) => [k, f.mapKind === "message" ? goValue(f.message, x as Message) : scalar(x) ?? zero(x)]),
      );
    }
    default:
      return scalar(v);
  }
}

/** A scalar as Go prints it, or undefined for its zero value (omitempty). */
function scalar(v: unknown): JsonValue {
  if (v === 0 || v === 0n || v === "" || v === false || v === undefined) return undefined;
  if (typeof v === "bigint") return rawJson(String(v));
  if (v instanceof Uint8Array) return v.length === 0 ? undefined : btoa(String.fromCharCode(...v));
  return v;
}

/** A zero inside a list is still printed. */
function zero(v: unknown): JsonValue {
  return typeof v === "bigint" ? 0 : typeof v === "string" ? "" : typeof v === "boolean" ? false : 0;
}
