import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Columns aligned like Go's tabwriter as ctr uses it: each column as wide as its widest cell plus padding. */
export function formatTable(rows: readonly (readonly string[])[], padding = 4): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + padding))).join("")
      .trimEnd()
  ).join("\n") + (rows.length ? "\n" : "");
}

export function printTable(rows: readonly (readonly string[])[], padding = 4): void {
  Deno.stdout.writeSync(new TextEncoder().encode(formatTable(rows, padding)));
}

/** `k=v,k2=v2` as ctr shows labels. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(",");
}

/** `KEY=VALUE` arguments into a label map; `KEY=` (empty value) removes a label on update. */
export function parseLabelArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const i = arg.indexOf("=");
    if (i < 0) out[arg] = "";
    else out[arg.slice(0, i)] = arg.slice(i + 1);
  }
  return out;
}

/**
 * A Timestamp as Go's time.Time marshals to JSON (ctr's `info` commands): RFC 3339 in UTC with the
 * nanoseconds, trailing zeros trimmed; Go's zero time when absent.
 */
export function formatGoTime(t: Timestamp | undefined): string {
  if (!t) return "0001-01-01T00:00:00Z";
  const base = new Date(Number(t.seconds) * 1000).toISOString().slice(0, 19);
  const frac = String(t.nanos).padStart(9, "0").replace(/0+$/, "");
  return `${base}${frac ? `.${frac}` : ""}Z`;
}
