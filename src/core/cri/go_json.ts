/**
 * A CRI message as Go's encoding/json writes the gogo-generated structs of k8s.io/cri-api: proto field
 * names (`port_mappings`), zero values left out (`omitempty`), enums and 64-bit integers as numbers.
 * containerd's verbose status infos embed the pod's and the container's config this way, and tools
 * (crictl inspect, the kubelet's debug paths, the CRI test suites) decode them into those structs.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";

type Fields = Readonly<Record<string, unknown>>;

export function goJson(desc: DescMessage, message: object): Record<string, unknown> {
  const msg = message as Fields;
  const out: Record<string, unknown> = {};
  for (const f of desc.fields) {
    let value: unknown;
    if (f.oneof) {
      const chosen = msg[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case !== f.localName) continue;
      value = chosen.value;
    } else value = msg[f.localName];
    const encoded = encodeField(f, value);
    if (encoded !== undefined) out[f.name] = encoded;
  }
  return out;
}

/** The field's JSON, or undefined for a zero value (omitted). */
function encodeField(f: DescField, value: unknown): unknown {
  switch (f.fieldKind) {
    case "scalar":
      return isZero(value) ? undefined : scalar(value);
    case "enum":
      return value === 0 || value === undefined ? undefined : value;
    case "message":
      return value === undefined ? undefined : goJson(f.message, value as object);
    case "list": {
      const items = value as readonly unknown[] | undefined;
      if (!items || items.length === 0) return undefined;
      return items.map((v) => f.listKind === "message" ? goJson(f.message, v as object) : scalar(v));
    }
    case "map": {
      const entries = Object.entries((value ?? {}) as Fields);
      if (entries.length === 0) return undefined;
      return Object.fromEntries(
        entries.map(([k, v]) => [k, f.mapKind === "message" ? goJson(f.message, v as object) : scalar(v)]),
      );
    }
  }
}

function isZero(v: unknown): boolean {
  return v === undefined || v === 0 || v === 0n || v === "" || v === false ||
    (v instanceof Uint8Array && v.length === 0);
}

function scalar(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (v instanceof Uint8Array) return btoa(String.fromCharCode(...v));
  return v;
}
