/** Image records: names pointing at a target descriptor, per namespace (containerd's images.Store). */
export { adaptImage, type Image, type ImageInit, ImageStore } from "./store.ts";
