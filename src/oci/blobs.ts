/**
 * The narrow view of content and image records that image tools need (import, export, check, finding a
 * platform's manifest), so the same code runs in the daemon (over its stores) and in a client (over the
 * Content and Images services, as ctr does).
 */

import type { Descriptor } from "./image.ts";

export interface BlobInfo {
  readonly size: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface BlobWriteOptions {
  /** The digest the data must hash to; without it the computed one is used. */
  readonly expected?: string;
  readonly size?: number;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface BlobStore {
  /** undefined when the blob is absent. */
  info(digest: string): Promise<BlobInfo | undefined>;
  read(digest: string): AsyncIterable<Uint8Array>;
  /** Stores and commits `data` under ingest `ref`; a blob that is already there is fine. */
  write(
    ref: string,
    data: AsyncIterable<Uint8Array>,
    options?: BlobWriteOptions,
  ): Promise<{ digest: string; size: number }>;
  /** Sets the given labels, keeping the others. */
  label(digest: string, labels: Readonly<Record<string, string>>): Promise<void>;
}

export interface ImageRecord {
  readonly name: string;
  readonly target: Descriptor;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ImageRecords {
  get(name: string): Promise<ImageRecord>;
  /** Points `name` at `target`, creating the record when needed. */
  put(image: ImageRecord): Promise<void>;
}
