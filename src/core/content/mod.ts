/**
 * The content store: content-addressed blobs stored once in a backend (the local folder, or a content
 * proxy plugin), held per namespace in the metadata database, written through resumable, verified
 * ingests (after containerd's content.Store and its metadata layer).
 */
export {
  adaptInfo,
  ContentStore,
  type ContentStoreOptions,
  type IngestRecord,
  type ReadOptions,
} from "./store.ts";
export type {
  BackendWriter,
  BackendWriterOptions,
  Committed,
  ContentBackend,
  IngestKey,
  SweptContentBackend,
  SyncContentBackend,
} from "./backend.ts";
export { LocalContentBackend } from "./local.ts";
// The remote's module (and the Content API descriptors it brings) loads only when a proxy is configured.
export type { RemoteContentBackend, RemoteContentBackendOptions } from "./remote.ts";
export type { CommitOptions, Info, ReaderAt, Status, Writer, WriterOptions } from "./types.ts";
export { Digester } from "./digest.ts";
export { applyLabelPaths, validateLabels } from "./labels.ts";
