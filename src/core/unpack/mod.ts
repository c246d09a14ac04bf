/**
 * Unpacking a pulled image into snapshots: each layer applied on its parent chain and committed under
 * its chain ID, with the labels containerd's unpacker sets.
 */
export {
  type DecryptionKeys,
  type LayerState,
  Unpacker,
  type UnpackerDeps,
  type UnpackImage,
  type UnpackOptions,
} from "./unpacker.ts";
