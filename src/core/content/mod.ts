/**
 * The content store: content-addressed blobs shared on disk, held per namespace in the metadata
 * database, written through resumable, verified ingests (after containerd's content.Store).
 */
export {
  adaptInfo,
  ContentStore,
  type ContentStoreOptions,
  type IngestRecord,
  type ReadOptions,
} from "./store.ts";
export type { CommitOptions, Info, ReaderAt, Status, Writer, WriterOptions } from "./types.ts";
export { Digester } from "./digest.ts";
export { applyLabelPaths, validateLabels } from "./labels.ts";
