/**
 * The CRI's view of images, as containerd 1.6's CRI plugin keeps it (pkg/cri/server/image_*.go): an
 * image is identified by its config digest (the "image ID") and known under every reference that
 * points at it — repo tags, repo digests, and the ID itself, each an ordinary image record in the
 * `k8s.io` namespace labelled `io.cri-containerd.image=managed`. Nothing is cached that the image
 * store does not hold: what an image's manifest says is read once per target digest (immutable).
 */
import { failedPrecondition, invalidArgument, isNotFound, notFound } from "../../base/errors.ts";
import type { Descriptor } from "../../oci/image.ts";
import { isIndexType, parseManifest } from "../../oci/manifest.ts";
import { hostPlatform, platformMatcher } from "../../oci/platforms.ts";
import { chainId } from "../../oci/chain_id.ts";
import type { ContentStore } from "../content/mod.ts";
import type { Image, ImageStore } from "../images/mod.ts";
import { parseReference, type Reference } from "../../oci/reference.ts";

/** containerd's label on the image records its CRI plugin manages. */
export const IMAGE_LABEL_KEY = "io.cri-containerd.image";
export const IMAGE_LABEL_VALUE = "managed";

/** Told of every image record the CRI creates, updates or deletes (the plugin publishes the events). */
export type ImageChanged = (
  kind: "create" | "update" | "delete",
  image: { name: string; labels: Record<string, string> },
) => void;

/** What the CRI reports of one image (runtime.v1.Image). */
export interface CriImage {
  /** The config digest. */
  readonly id: string;
  readonly repoTags: string[];
  readonly repoDigests: string[];
  /** Bytes of the image's packed blobs for this platform: index, manifest, config and layers. */
  readonly size: number;
  /** From the config's User when numeric. */
  readonly uid?: bigint;
  /** From the config's User when not numeric. */
  readonly username: string;
  /** Every image record name that refers to it. */
  readonly references: string[];
  readonly chainId: string;
  /** The image config (OCI image-spec), for verbose status. */
  readonly config: Record<string, unknown>;
}

interface Resolved {
  readonly configDigest: string;
  readonly size: number;
  readonly chainId: string;
  readonly config: Record<string, unknown>;
}

/** A digest that names an image by ID: `sha256:<hex>` or the bare 64-hex form crictl accepts. */
const ID_RE = /^(?:sha256:)?([a-f0-9]{64})$/;

export class CriImages {
  readonly #ns: string;
  readonly #images: ImageStore;
  readonly #content: ContentStore;
  readonly #byTarget = new Map<string, Promise<Resolved>>();

  readonly #onChange?: ImageChanged;

  constructor(ns: string, deps: { images: ImageStore; content: ContentStore; onChange?: ImageChanged }) {
    this.#ns = ns;
    this.#images = deps.images;
    this.#content = deps.content;
    this.#onChange = deps.onChange;
  }

  /** Every image in the namespace, one entry per image ID. */
  async list(): Promise<CriImage[]> {
    const groups = new Map<string, { resolved: Resolved; refs: string[] }>();
    for (const img of await this.#images.list(this.#ns)) {
      let resolved: Resolved;
      try {
        resolved = await this.#resolve(img.target);
      } catch {
        continue; // content missing or not for this platform: containerd lists it neither
      }
      const g = groups.get(resolved.configDigest) ?? { resolved, refs: [] };
      g.refs.push(img.name);
      groups.set(resolved.configDigest, g);
    }
    return [...groups.values()].map((g) => toCriImage(g.resolved, g.refs)).sort((a, b) =>
      a.id.localeCompare(b.id)
    );
  }

  /**
   * The image a CRI image spec names — an ID, a repo tag or a repo digest, normalised as containerd
   * does (`busybox` is `docker.io/library/busybox:latest`) — or undefined.
   */
  async find(ref: string): Promise<CriImage | undefined> {
    const id = ID_RE.exec(ref);
    if (id) {
      const want = `sha256:${id[1]}`;
      return (await this.list()).find((i) => i.id === want);
    }
    let name: string;
    try {
      name = parseReference(ref).toString();
    } catch (err) {
      throw invalidArgument(`Invalid image reference "${ref}": ${(err as Error).message}`);
    }
    let img: Image;
    try {
      img = await this.#images.get(this.#ns, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const resolved = await this.#resolve(img.target);
    return (await this.list()).find((i) => i.id === resolved.configDigest);
  }

  /**
   * After a pull of `ref` to `target`: the image ID, the repo tag (or the digest reference the pull used)
   * and the repo digest all become managed records of the image, as containerd's PullImage leaves them.
   */
  async recordPull(ref: Reference, target: Descriptor): Promise<string> {
    const resolved = await this.#resolve(target);
    const repoDigest = `${ref.name}@${target.digest}`;
    const names = [resolved.configDigest, ref.tag !== undefined ? ref.toString() : undefined, repoDigest];
    for (const name of names) if (name) await this.#reference(name, target);
    return resolved.configDigest;
  }

  /** Removes every reference of the image `ref` names; an image that is not there is not an error. */
  async remove(ref: string): Promise<string[]> {
    const image = await this.find(ref);
    if (!image) return [];
    for (const name of image.references) {
      try {
        await this.#images.delete(this.#ns, name);
        this.#onChange?.("delete", { name, labels: {} });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return image.references;
  }

  async #reference(name: string, target: Descriptor): Promise<void> {
    const labels = { [IMAGE_LABEL_KEY]: IMAGE_LABEL_VALUE };
    try {
      const old = await this.#images.get(this.#ns, name);
      if (old.target.digest === target.digest && old.labels[IMAGE_LABEL_KEY] === IMAGE_LABEL_VALUE) return;
      const img = await this.#images.update(
        this.#ns,
        { name, target, labels: { ...old.labels, ...labels } },
        {
          fieldpaths: ["target", `labels.${IMAGE_LABEL_KEY}`],
        },
      );
      this.#onChange?.("update", { name, labels: { ...img.labels } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.#images.create(this.#ns, { name, target, labels });
      this.#onChange?.("create", { name, labels });
    }
  }

  #resolve(target: Descriptor): Promise<Resolved> {
    let p = this.#byTarget.get(target.digest);
    if (!p) {
      p = this.#read(target);
      this.#byTarget.set(target.digest, p);
      // A failure (content not there yet) is not remembered.
      p.catch(() => this.#byTarget.delete(target.digest));
    }
    return p;
  }

  async #read(target: Descriptor): Promise<Resolved> {
    const matcher = platformMatcher([hostPlatform()]);
    let desc = target;
    let size = target.size;
    for (let depth = 0; depth < 4; depth++) {
      const parsed = parseManifest(desc, await this.#bytes(desc.digest));
      if (parsed.kind === "manifest") {
        const config = JSON.parse(new TextDecoder().decode(await this.#bytes(parsed.config.digest))) as {
          rootfs?: { diff_ids?: string[] };
        } & Record<string, unknown>;
        size += parsed.config.size + parsed.layers.reduce((n, l) => n + l.size, 0);
        const diffIds = config.rootfs?.diff_ids ?? [];
        return { configDigest: parsed.config.digest, size, chainId: await chainId(diffIds), config };
      }
      const best = parsed.manifests.filter((m) => matcher.match(m.platform))
        .sort((a, b) => matcher.rank(a.platform) - matcher.rank(b.platform))[0];
      if (!best) throw notFound(`Image index ${desc.digest} has no manifest for this platform`);
      desc = best;
      size += best.size;
      if (!isIndexType(desc.mediaType)) continue;
    }
    throw failedPrecondition(`Image ${target.digest} nests indexes too deeply`);
  }

  async #bytes(digest: string): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for await (const c of this.#content.read(this.#ns, digest)) chunks.push(c);
    return new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
  }
}

function toCriImage(r: Resolved, refs: string[]): CriImage {
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const name of refs) {
    // A bare digest (the image ID reference) is a digest reference: neither a tag nor a repo digest,
    // as docker.ParseAnyReference tells them apart in containerd.
    if (/^[a-z0-9]+:[a-f0-9]{32,}$/.test(name)) continue;
    let ref: Reference;
    try {
      ref = parseReference(name, { defaultTag: false });
    } catch {
      continue; // the image ID reference, or a name that is not a reference
    }
    if (ref.digest !== undefined) repoDigests.push(ref.toString());
    else if (ref.tag !== undefined) repoTags.push(ref.toString());
  }
  const { uid, username } = userOf(r.config);
  return {
    id: r.configDigest,
    repoTags: repoTags.sort(),
    repoDigests: repoDigests.sort(),
    size: r.size,
    uid,
    username,
    references: refs.sort(),
    chainId: r.chainId,
    config: r.config,
  };
}

/** containerd's getUserFromImage: the user part of `config.User`, a uid when it is a number. */
function userOf(config: Record<string, unknown>): { uid?: bigint; username: string } {
  const user = ((config.config as { User?: string } | undefined)?.User ?? "").split(":")[0] ?? "";
  if (user === "") return { username: "" };
  if (/^\d+$/.test(user)) return { uid: BigInt(user), username: "" };
  return { username: user };
}
