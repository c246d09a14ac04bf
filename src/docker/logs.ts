/**
 * A container's json-file log for `berth logs` and compose: where its log URI label puts the file, and
 * the reader of core's json-file format.
 */
import type { Container } from "../gen/services/containers/v1/containers_pb.ts";
import { LABELS } from "./labels.ts";

export { type JsonLogEntry, readJsonLog, type ReadJsonLogOptions } from "../core/logs/json_file.ts";

/** The json-file path in a container's log URI label (`…?path=<file>`), if it has one. */
export function logPathOf(c: Pick<Container, "labels">): string | undefined {
  const uri = c.labels[LABELS.logUri];
  if (!uri) return undefined;
  try {
    return new URL(uri).searchParams.get("path") ?? undefined;
  } catch {
    return undefined;
  }
}
