import type { Image } from "../images/mod.ts";
import type { Descriptor } from "../remotes/mod.ts";

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

/** The layers of one platform's image, as the unpacker takes them. */
export interface UnpackImage {
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface UnpackOptions {
  readonly snapshotter: string;
  readonly signal?: AbortSignal;
  /** Resolves once layer `index` is in the content store (so unpacking overlaps downloading). */
  readonly layerReady?: (index: number) => Promise<void>;
  /** Layer `index` as it downloads, from its first byte, if it can be followed (see live_blobs.ts). */
  readonly layerStream?: (index: number) => ReadableStream<Uint8Array> | undefined;
  /** Called with each snapshot key before it is made, so a caller's lease can hold it (GC). */
  readonly onSnapshot?: (key: string) => Promise<void>;
  readonly onLayer?: (index: number, state: string) => void;
}

/** What pull needs of src/core/unpack's Unpacker. */
export interface ImageUnpacker {
  unpack(ns: string, image: UnpackImage, options: UnpackOptions): Promise<{ chainId: string }>;
}

/** Told about every image record a transfer creates or updates (the service publishes the events). */
export type ImageRecorded = (ns: string, kind: "create" | "update", image: Image) => void;
