/**
 * A configured runtime's `options` table as the runc shim reads them: containerd's CRI decodes the TOML
 * into the runtime type's options message (containerd.runc.v1.Options for io.containerd.runc.*) and
 * passes it with the container record.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { invalidArgument } from "../../base/errors.ts";
import { OptionsSchema } from "../../gen/types/runc/options/oci_pb.ts";
import type { AnyValue } from "../containers/mod.ts";
import type { CriRuntime } from "./config.ts";

const RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options";

/** TOML key (Go field name) → message field, with its type. */
const FIELDS: Readonly<Record<string, [string, "string" | "boolean" | "number"]>> = {
  NoPivotRoot: ["noPivotRoot", "boolean"],
  NoNewKeyring: ["noNewKeyring", "boolean"],
  ShimCgroup: ["shimCgroup", "string"],
  IoUid: ["ioUid", "number"],
  IoGid: ["ioGid", "number"],
  BinaryName: ["binaryName", "string"],
  Root: ["root", "string"],
  SystemdCgroup: ["systemdCgroup", "boolean"],
  CriuImagePath: ["criuImagePath", "string"],
  CriuWorkPath: ["criuWorkPath", "string"],
};

/** The runc options of `runtime` as a protobuf Any; undefined for runtimes that are not runc's. */
export function runtimeOptions(runtime: CriRuntime): AnyValue | undefined {
  if (!runtime.runtimeType.startsWith("io.containerd.runc.")) return undefined;
  const init: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(runtime.options)) {
    const field = FIELDS[key];
    if (!field) {
      throw invalidArgument(
        `Invalid runtime option "${key}" for ${runtime.runtimeType}: runc's options have no such field`,
      );
    }
    const kind: string = typeof value;
    if (kind !== field[1]) {
      throw invalidArgument(
        `Invalid runtime option "${key}" for ${runtime.runtimeType}: expected a ${field[1]}`,
      );
    }
    init[field[0]] = value;
  }
  return { typeUrl: RUNC_OPTIONS_TYPE, value: toBinary(OptionsSchema, create(OptionsSchema, init)) };
}
