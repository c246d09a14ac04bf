import { invalidArgument } from "../../base/errors.ts";

export type Compression = "none" | "gzip" | "zstd";

const LAYER_TYPES: Record<string, Compression> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
};

/** The compression of a layer media type; invalidArgument for anything that is not a known layer type. */
export function layerCompression(mediaType: string): Compression {
  const c = LAYER_TYPES[mediaType];
  if (c === undefined) {
    throw invalidArgument(`Cannot apply layer of media type "${mediaType}": not a supported layer type`);
  }
  return c;
}
