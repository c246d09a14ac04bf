/**
 * Reading manifests and indexes, and the labels containerd puts on them: the gc references to their
 * children (images.SetChildrenMappedLabels with ChildGCLabels) and the distribution source.
 */

import { invalidArgument } from "../base/errors.ts";
import { validateDigest } from "./digest.ts";
import { type Descriptor, MediaType } from "./image.ts";

export type Parsed =
  | { readonly kind: "index"; readonly manifests: readonly Descriptor[] }
  | { readonly kind: "manifest"; readonly config: Descriptor; readonly layers: readonly Descriptor[] };

export const isIndexType = (mt: string) => mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
export const isManifestType = (mt: string) => mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
export const isConfigType = (mt: string) => mt === MediaType.OciConfig || mt === MediaType.DockerConfig;
export const isLayerType = (mt: string) =>
  mt.startsWith("application/vnd.oci.image.layer.") || mt.startsWith("application/vnd.docker.image.rootfs.");

/**
 * Parses a manifest or index body, checking what a pull relies on. Throws invalidArgument naming the
 * digest and what is wrong.
 */
export function parseManifest(desc: Descriptor, bytes: Uint8Array): Parsed {
  const bad = (why: string) =>
    invalidArgument(`Manifest ${desc.digest} (${desc.mediaType}) is malformed: ${why}`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw bad("not a JSON object");
  if (doc.schemaVersion === 1) throw bad("schema 1 manifests are not supported");
  if (doc.schemaVersion !== 2) throw bad(`schemaVersion is ${JSON.stringify(doc.schemaVersion)}, not 2`);
  if (typeof doc.mediaType === "string" && doc.mediaType !== desc.mediaType) {
    const both = [doc.mediaType, desc.mediaType];
    // A Docker list served as OCI index (or the other way round) is one thing under two names.
    if (!(both.every(isIndexType) || both.every(isManifestType))) {
      throw bad(`its mediaType ${doc.mediaType} differs from the descriptor's`);
    }
  }
  if (isIndexType(desc.mediaType)) {
    if (!Array.isArray(doc.manifests)) throw bad("an index needs a manifests array");
    return {
      kind: "index",
      manifests: doc.manifests.map((m, i) => checkDescriptor(m, `manifests[${i}]`, bad)),
    };
  }
  if (isManifestType(desc.mediaType)) {
    const config = checkDescriptor(doc.config, "config", bad);
    if (!Array.isArray(doc.layers)) throw bad("a manifest needs a layers array");
    const layers = doc.layers.map((l, i) => checkDescriptor(l, `layers[${i}]`, bad));
    return { kind: "manifest", config, layers };
  }
  throw bad("unknown manifest media type");
}

function checkDescriptor(v: unknown, where: string, bad: (why: string) => Error): Descriptor {
  if (typeof v !== "object" || v === null) throw bad(`${where} is not a descriptor`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || d.mediaType === "") throw bad(`${where} has no mediaType`);
  if (typeof d.digest !== "string") throw bad(`${where} has no digest`);
  try {
    validateDigest(d.digest);
  } catch {
    throw bad(`${where} has an invalid digest ${JSON.stringify(d.digest)}`);
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw bad(`${where} has an invalid size ${JSON.stringify(d.size)}`);
  }
  return d as unknown as Descriptor;
}

/** The children of a parsed manifest or index, in containerd's order (config first, then layers). */
export function childrenOf(p: Parsed): Descriptor[] {
  return p.kind === "index" ? [...p.manifests] : [p.config, ...p.layers];
}

/**
 * The gc labels containerd sets on a parent for its children: `containerd.io/gc.ref.content.config`,
 * `.m.<i>` for manifests, `.l.<i>` for layers, `.<i>` for anything else; the index counts per prefix.
 */
export function childGcLabels(children: readonly Descriptor[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const seen = new Map<string, number>();
  for (const ch of children) {
    const key = gcLabelKey(ch.mediaType);
    const idx = seen.get(key) ?? 0;
    seen.set(key, idx + 1);
    labels[idx > 0 || key.endsWith(".") ? `${key}${idx}` : key] = ch.digest;
  }
  return labels;
}

function gcLabelKey(mt: string): string {
  if (isConfigType(mt)) return "containerd.io/gc.ref.content.config";
  if (isManifestType(mt)) return "containerd.io/gc.ref.content.m.";
  if (isLayerType(mt)) return "containerd.io/gc.ref.content.l.";
  return "containerd.io/gc.ref.content.";
}

export const DISTRIBUTION_SOURCE = "containerd.io/distribution.source";

/**
 * The distribution source label for a blob pulled from `domain`/`path`, merged into its current value as
 * containerd does: key `containerd.io/distribution.source.<host without port>`, a sorted, de-duplicated,
 * comma-separated list of repositories. Undefined when the label would be too large.
 */
export function distributionSourceLabel(
  domain: string,
  path: string,
  current: Readonly<Record<string, string>>,
): [string, string] | undefined {
  const host = domain.startsWith("[") ? domain.slice(0, domain.indexOf("]") + 1) : domain.split(":")[0]!;
  const key = `${DISTRIBUTION_SOURCE}.${host}`;
  const repos = new Set((current[key] ?? "").split(",").filter((r) => r !== ""));
  repos.add(path);
  const value = [...repos].sort().join(",");
  if (new TextEncoder().encode(key + value).length > 4096) return undefined;
  return [key, value];
}

/** containerd's ingest ref for a descriptor (remotes.MakeRefKey): `layer-sha256:…`, `manifest-sha256:…`. */
export function refKey(desc: Descriptor): string {
  const name = desc.annotations?.["org.opencontainers.image.ref.name"];
  const key = name ? `${name}@${desc.digest}` : desc.digest;
  const mt = desc.mediaType;
  if (isManifestType(mt)) return `manifest-${key}`;
  if (isIndexType(mt)) return `index-${key}`;
  if (isLayerType(mt)) return `layer-${key}`;
  if (isConfigType(mt)) return `config-${key}`;
  return `unknown-${key}`;
}
