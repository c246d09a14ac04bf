import type { Image } from "../images/mod.ts";
import type { UnpackImage, UnpackOptions } from "../unpack/mod.ts";

export type TransferStatus =
  | "resolving"
  | "waiting"
  | "downloading"
  | "uploading"
  | "unpacking"
  | "done"
  | "exists"
  | "error";

/** Progress of one descriptor, keyed by its ingest ref (`layer-sha256:…`). */
export interface TransferEvent {
  readonly ref: string;
  readonly digest: string;
  readonly mediaType: string;
  readonly status: TransferStatus;
  readonly offset: number;
  readonly total: number;
  /** When a download resumed an interrupted ingest: the offset it resumed from. */
  readonly resumedFrom?: number;
  readonly error?: string;
}

export type ProgressFn = (event: TransferEvent) => void;

/** What pull needs of src/core/unpack's Unpacker. */
export interface ImageUnpacker {
  unpack(ns: string, image: UnpackImage, options: UnpackOptions): Promise<{ chainId: string }>;
  /** Loads what unpacking needs before the first layer arrives (optional). */
  prepare?(): Promise<void>;
}

/** Told about every image record a transfer creates or updates (the service publishes the events). */
export type ImageRecorded = (ns: string, kind: "create" | "update", image: Image) => void;
