import type { ContentStore, Info } from "../content/mod.ts";
import { isNotFound } from "../../base/errors.ts";
import type { Image, ImageInit, ImageStore } from "../images/mod.ts";
import type { ImageRecorded } from "./types.ts";
import { collect } from "../../oci/read_bytes.ts";

/** The blob's info, or undefined when the namespace does not hold it. */
export async function infoOrUndefined(
  store: ContentStore,
  ns: string,
  digest: string,
): Promise<Info | undefined> {
  try {
    return await store.info(ns, digest);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A whole (small) blob of the namespace: a manifest, index or config. */
export function readAll(store: ContentStore, ns: string, digest: string): Promise<Uint8Array> {
  return collect(store.read(ns, digest));
}

/** Points `image.name` at its target, creating the record when it is new (containerd's createNewImage). */
export async function recordImage(
  images: ImageStore,
  ns: string,
  image: ImageInit,
  onImage?: ImageRecorded,
): Promise<Image> {
  try {
    const updated = await images.update(ns, image);
    onImage?.(ns, "update", updated);
    return updated;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const created = await images.create(ns, image);
  onImage?.(ns, "create", created);
  return created;
}
