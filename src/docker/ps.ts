/**
 * `docker ps`'s rows: a container's record, spec and state as Docker's list shows them (the table's
 * columns, and the keys of `--format json`), and Docker's `--filter` forms.
 */
import type { Container } from "../gen/services/containers/v1/containers_pb.ts";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../base/errors.ts";
import { jsonLabel, LABELS } from "./labels.ts";
import { nameOf } from "./names.ts";
import { type ContainerState, describeStatus, formatPorts, timeAgo } from "./status.ts";

/** One row of `docker ps`, with the keys of `docker ps --format '{{json .}}'`. */
export interface PsEntry {
  ID: string;
  Image: string;
  Command: string;
  CreatedAt: string;
  RunningFor: string;
  Status: string;
  State: string;
  Ports: string;
  Names: string;
  Labels: string;
  Networks: string;
  Mounts: string;
  LocalVolumes: string;
  Size: string;
}

export interface PsOptions {
  /** Full ids and commands (`--no-trunc`). */
  readonly noTrunc?: boolean;
  readonly now?: Date;
}

/** Cuts `s` to `max` characters, the last one an ellipsis, as docker's formatter does. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  if (chars.length <= max) return s;
  return chars.slice(0, max - 1).join("") + "…";
}

/** Go's time.Time String() in UTC, as docker's CreatedAt: "2025-03-01 12:00:00 +0000 UTC". */
export function goTimeString(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace("T", " ")} +0000 UTC`;
}

/** `k=v,k2=v2`, sorted by key, as docker's Labels column. */
export function labelList(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(",");
}

/** A ps row of `container` (its spec's process args as COMMAND) in state `state`. */
export function psEntry(
  container: Pick<Container, "id" | "image" | "labels" | "createdAt">,
  args: readonly string[],
  state: ContainerState,
  options: PsOptions = {},
): PsEntry {
  const now = options.now ?? new Date();
  const created = container.createdAt ? timestampDate(container.createdAt) : new Date(0);
  const command = args.join(" ");
  const mounts = jsonLabel<unknown>(container.labels, LABELS.mounts, []);
  return {
    ID: options.noTrunc ? container.id : container.id.slice(0, 12),
    Image: container.image,
    Command: JSON.stringify(options.noTrunc ? command : ellipsis(command, 20)),
    CreatedAt: goTimeString(created),
    RunningFor: timeAgo(created, now),
    Status: describeStatus(state, now),
    State: state.status,
    Ports: formatPorts(container.labels),
    Names: nameOf(container),
    Labels: labelList(container.labels),
    Networks: jsonLabel<string[]>(container.labels, LABELS.networks, []).join(","),
    Mounts: Array.isArray(mounts)
      ? mounts.map((m: { Name?: string; Source?: string }) => m?.Name || m?.Source || "").filter(Boolean)
        .join(",")
      : "",
    LocalVolumes: "0",
    Size: "",
  };
}

const STATUSES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

/** Docker's `--filter` values, by key: the same key given twice matches either, different keys both. */
export type PsFilters = Map<string, string[]>;

export function parsePsFilters(args: readonly string[]): PsFilters {
  const out: PsFilters = new Map();
  for (const arg of args) {
    const i = arg.indexOf("=");
    const key = i < 0 ? "" : arg.slice(0, i);
    const value = arg.slice(i + 1);
    if (!["label", "name", "status", "id"].includes(key)) {
      throw invalidArgument(
        `Invalid filter "${arg}": use label=KEY[=VALUE], name=NAME, status=STATUS or id=ID`,
      );
    }
    if (key === "status" && !STATUSES.includes(value)) {
      throw invalidArgument(`Invalid filter "${arg}": the status must be one of ${STATUSES.join(", ")}`);
    }
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/** Whether the labels pass every `label=` filter (docker: each one must match). */
function labelsMatch(labels: Readonly<Record<string, string>>, wanted: readonly string[]): boolean {
  return wanted.every((f) => {
    const i = f.indexOf("=");
    return i < 0 ? f in labels : labels[f.slice(0, i)] === f.slice(i + 1);
  });
}

/** Whether a container passes the filters. `name=` matches part of the name, as docker's does. */
export function matchesFilters(
  container: Pick<Container, "id" | "labels">,
  state: ContainerState,
  filters: PsFilters,
): boolean {
  const any = (key: string, test: (v: string) => boolean) => {
    const values = filters.get(key);
    return !values || values.some(test);
  };
  const labels = filters.get("label");
  return (!labels || labelsMatch(container.labels, labels)) &&
    any("name", (v) => nameOf(container).includes(v.replace(/^\//, ""))) &&
    any("status", (v) => v === state.status) &&
    any("id", (v) => container.id.startsWith(v));
}
