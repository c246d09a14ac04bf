import { invalidArgument } from "../../base/errors.ts";

const MAX_LABEL_SIZE = 4096;

/**
 * Validates labels as containerd does (pkg/labels): a key must be non-empty and a key plus its value
 * at most 4096 bytes.
 */
export function validateLabels(labels: Readonly<Record<string, string>>): void {
  const enc = new TextEncoder();
  for (const [k, v] of Object.entries(labels)) {
    if (k === "") throw invalidArgument("Invalid label: the key is empty");
    const total = enc.encode(k).length + enc.encode(v).length;
    if (total > MAX_LABEL_SIZE) {
      throw invalidArgument(
        `Invalid label ${
          JSON.stringify(k.slice(0, 64))
        }: key and value are ${total} bytes, more than ${MAX_LABEL_SIZE}`,
      );
    }
  }
}

/**
 * Applies containerd's label field paths to `current`: "labels" replaces all labels, "labels.<key>"
 * sets (or, when absent from `next`, removes) one. Returns undefined if a path is not a label path.
 */
export function applyLabelPaths(
  current: Readonly<Record<string, string>>,
  next: Readonly<Record<string, string>>,
  path: string,
): Record<string, string> | undefined {
  if (path === "labels") return { ...next };
  if (!path.startsWith("labels.")) return undefined;
  const key = path.slice("labels.".length);
  const out = { ...current };
  if (Object.hasOwn(next, key) && next[key] !== "") out[key] = next[key]!;
  else delete out[key];
  return out;
}
