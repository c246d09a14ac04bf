/**
 * Image figures (issue 6): cold pulls of a 1-layer and a 3-layer image and of a ~200 MB layer from a
 * local registry, each on a fresh daemon; fetch MB/s and unpack MB/s of the big layer. Berth is pulled
 * two ways: by `ctr images pull` (the client drives the pull through Berth's content, images, snapshots
 * and diff APIs, as against containerd) and by `berth images pull` (the daemon pulls, Transfer/Pull).
 */

import { buildFixtureImages, pushFixtures } from "../tests/fixtures/images.ts";
import { startRegistry, type TestRegistry } from "../tests/helpers/registry.ts";
import { type BigImage, buildBigImage, pushBigImage } from "./big_image.ts";
import { ctrArgv, must } from "./exec.ts";
import { startReady } from "./ready.ts";
import type { FigureGroup, SampleContext, SetupContext } from "./runner.ts";
import { NAMESPACE, type Target } from "./targets.ts";

/** Megabytes (10^6 bytes) per second. */
export function mbPerSecond(bytes: number, ms: number): number {
  if (!(ms > 0)) throw new RangeError(`Cannot take a rate over ${ms} ms`);
  return bytes / 1e6 / (ms / 1000);
}

interface Shared {
  registry: TestRegistry;
  tmp: string;
  single: string;
  layered: string;
  big: string;
  image: BigImage;
  /** An image of MANY_FILES small files in one layer, as real base images have thousands. */
  many: string;
  /** The big image encrypted for `key` (JWE, by skopeo). */
  bigEncrypted: { ref: string; key: string };
}

/** The many-files image: 4,096 files of 2 KiB (8 MiB), the order of a Debian or Ubuntu base layer's count. */
const MANY_FILES = 4096;
const MANY_FILE_BYTES = 2048;

export function pullGroup(options: { bigMiB?: number } = {}): FigureGroup {
  let shared: Shared | undefined;
  let tmp: string | undefined;
  let registry: TestRegistry | undefined;

  const setup = async (ctx: SetupContext) => {
    tmp = await Deno.makeTempDir({ prefix: "berth-bench-pull-" });
    registry = await startRegistry({ signal: ctx.signal });
    const set = await buildFixtureImages(`${tmp}/fixtures`);
    const pushed = await pushFixtures(registry, set, { names: ["single", "layered"], signal: ctx.signal });
    const sizeMiB = options.bigMiB ?? (ctx.quick ? 32 : 200);
    const t0 = performance.now();
    const image = await buildBigImage(`${tmp}/big`, { sizeMiB });
    const big = `${registry.host}/berth/big:v1`;
    await pushBigImage(image, big, ctx.signal);
    const manyImage = await buildBigImage(`${tmp}/many`, {
      sizeMiB: (MANY_FILES * MANY_FILE_BYTES) >> 20,
      fileBytes: MANY_FILE_BYTES,
    });
    const many = `${registry.host}/berth/many:v1`;
    await pushBigImage(manyImage, many, ctx.signal);
    ctx.log(
      `  built and pushed a ${(image.layerBytes / 1e6).toFixed(0)} MB layer in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    shared = {
      registry,
      tmp,
      single: pushed.single.reference,
      layered: pushed.layered.reference,
      big,
      image,
      many,
      bigEncrypted: await encryptBig(registry, big, tmp, ctx),
    };
    // Every run then reads the registry's blobs from the page cache, as the warm-up would.
    await curlSha256(shared, ctx.signal);
  };

  const teardown = async () => {
    await registry?.stop();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
    shared = undefined;
    registry = undefined;
    tmp = undefined;
  };

  async function onFresh<T>(target: Target, fn: (socket: string) => Promise<T>): Promise<T> {
    const d = await startReady(target);
    try {
      return await fn(d.socket);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${target.id} daemon log ends:\n${await d.logTail(5)}`);
    } finally {
      await d.stop();
    }
  }

  const sample = async (target: Target, ctx: SampleContext): Promise<Record<string, number>> => {
    const s = shared!;
    const signal = ctx.signal;
    const ctrPull = (ref: string) =>
      onFresh(
        target,
        async (sock) =>
          (await must(ctrArgv(sock, NAMESPACE, ["images", "pull", "--plain-http", ref]), { signal })).ms,
      );
    const ctrSplit = () =>
      onFresh(target, async (sock) => {
        const fetch = await must(ctrArgv(sock, NAMESPACE, ["content", "fetch", "--plain-http", s.big]), {
          signal,
        });
        const unpack = await must(ctrArgv(sock, NAMESPACE, ["images", "pull", "--plain-http", s.big]), {
          signal,
        });
        return { fetch: fetch.ms, unpack: unpack.ms };
      });
    const out: Record<string, number> = {};
    out.pull_single_ms = await ctrPull(s.single);
    out.pull_layered_ms = await ctrPull(s.layered);
    out.pull_big_ms = await ctrPull(s.big);
    out.pull_many_ms = await ctrPull(s.many);
    const split = await ctrSplit();
    out.fetch_big_mbps = mbPerSecond(s.image.layerBytes, split.fetch);
    out.unpack_big_mbps = mbPerSecond(s.image.uncompressedBytes, split.unpack);

    const cli = await target.cli();
    if (cli === undefined) {
      // containerd's own way to pull is ctr's: the same samples stand in the "native" rows.
      out.native_single_ms = out.pull_single_ms;
      out.native_layered_ms = out.pull_layered_ms;
      out.native_big_ms = out.pull_big_ms;
      out.native_many_ms = out.pull_many_ms;
      out.native_fetch_big_mbps = out.fetch_big_mbps;
      out.native_unpack_big_mbps = out.unpack_big_mbps;
    } else {
      const berth = (sock: string, args: string[]) =>
        must([...cli, "-a", sock, "-n", NAMESPACE, "images", "pull", "--plain-http", ...args], { signal });
      const nativePull = (ref: string) => onFresh(target, async (sock) => (await berth(sock, [ref])).ms);
      out.native_single_ms = await nativePull(s.single);
      out.native_layered_ms = await nativePull(s.layered);
      out.native_big_ms = await nativePull(s.big);
      out.native_many_ms = await nativePull(s.many);
      const nsplit = await onFresh(target, async (sock) => {
        const fetch = await berth(sock, ["--skip-unpack", s.big]);
        const unpack = await berth(sock, [s.big]);
        return { fetch: fetch.ms, unpack: unpack.ms };
      });
      out.native_fetch_big_mbps = mbPerSecond(s.image.layerBytes, nsplit.fetch);
      out.native_unpack_big_mbps = mbPerSecond(s.image.uncompressedBytes, nsplit.unpack);
      // Berth alone: containerd decrypts only through imgcrypt's ctd-decoder, which Debian does not ship.
      const enc = s.bigEncrypted;
      out.native_big_enc_ms = await onFresh(
        target,
        async (sock) => (await berth(sock, ["--key", enc.key, enc.ref])).ms,
      );
      out.native_big_enc_ratio = out.native_big_enc_ms / out.native_big_ms;
    }
    return out;
  };

  const reference = async (ctx: SampleContext): Promise<Record<string, number>> => {
    const s = shared!;
    const fetchMs = await curlSha256(s, ctx.signal);
    const dest = await Deno.makeTempDir({ prefix: "berth-bench-untar-" });
    try {
      const blob = `${s.image.dir}/blobs/sha256/${s.image.layerDigest.replace(/^sha256:/, "")}`;
      const untar = await must(["tar", "-xzf", blob, "-C", dest], { signal: ctx.signal });
      return {
        curl_sha256_mbps: mbPerSecond(s.image.layerBytes, fetchMs),
        tar_unpack_mbps: mbPerSecond(s.image.uncompressedBytes, untar.ms),
      };
    } finally {
      await Deno.remove(dest, { recursive: true }).catch(() => {});
    }
  };

  return {
    id: "pull",
    title: "Images: cold pull from a local registry, fetch and unpack rates",
    defaultRuns: { full: 3, quick: 1 },
    warmup: false,
    setup,
    teardown,
    sample,
    reference,
    figures: [
      { id: "pull_single_ms", label: "`ctr images pull` 1-layer image (cold)", unit: "ms" },
      { id: "pull_layered_ms", label: "`ctr images pull` 3-layer image (cold)", unit: "ms" },
      { id: "pull_big_ms", label: "`ctr images pull` ~200 MB layer (cold)", unit: "ms" },
      { id: "pull_many_ms", label: "`ctr images pull` 4,096-file layer (cold)", unit: "ms" },
      {
        id: "fetch_big_mbps",
        label: "`ctr content fetch` ~200 MB layer, MB/s (higher is better)",
        unit: "MB/s",
      },
      {
        id: "unpack_big_mbps",
        label: "unpack after fetch, uncompressed MB/s (higher is better)",
        unit: "MB/s",
      },
      {
        id: "native_single_ms",
        label: "own CLI pull 1-layer image (berth: `berth images pull`)",
        unit: "ms",
      },
      { id: "native_layered_ms", label: "own CLI pull 3-layer image", unit: "ms" },
      { id: "native_big_ms", label: "own CLI pull ~200 MB layer", unit: "ms" },
      { id: "native_many_ms", label: "own CLI pull 4,096-file layer", unit: "ms" },
      {
        id: "native_fetch_big_mbps",
        label: "own CLI fetch only (berth: `--skip-unpack`), MB/s",
        unit: "MB/s",
      },
      { id: "native_unpack_big_mbps", label: "own CLI unpack after fetch, uncompressed MB/s", unit: "MB/s" },
      {
        id: "native_big_enc_ms",
        label: "own CLI pull ~200 MB layer, JWE-encrypted (berth: `--key`)",
        unit: "ms",
        only: ["berth"],
      },
      {
        id: "native_big_enc_ratio",
        label: "decryption overhead: encrypted ÷ plain own CLI pull (goal < 1.15)",
        unit: "×",
        only: ["berth"],
      },
    ],
    references: [
      { id: "curl_sha256_mbps", label: "ceiling: `curl` the layer blob `| sha256sum`, MB/s", unit: "MB/s" },
      {
        id: "tar_unpack_mbps",
        label: "ceiling: `tar -xzf` the layer into a temp dir, uncompressed MB/s",
        unit: "MB/s",
      },
    ],
    notes: [
      'A local Debian `docker-registry` on 127.0.0.1 serves the fixture images ("single": busybox in 1 ' +
      'gzip layer; "layered": 3 layers, the first shared with "single") and a ~200 MB image: one gzip ' +
      "layer of deterministic xorshift data in 4 MiB files (incompressible, so it measures transfer). It is " +
      "built once per benchmark run, and read once before the first run so every run reads the registry " +
      'from the page cache. The "4,096-file" image is the same kind of layer in 2 KiB files (8 MiB): real ' +
      "base images hold thousands of files, and what an unpack does per file (create it, count its usage " +
      "at the commit) weighs there, not in the other images.",
      "Every pull starts a fresh daemon with an empty root (not timed) and times the whole client process. " +
      "`ctr images pull --plain-http` drives the pull from the client on both daemons and includes the " +
      'unpack into overlayfs snapshots. On containerd the "own CLI" rows repeat the ctr samples; on ' +
      "Berth they are `berth images pull --plain-http` from dist/bundle/main.js (the daemon pulls and unpacks; " +
      "the CLI's own deno start-up, ~0.1 s, is included).",
      "`ctr images pull` waits for its progress display's next 100 ms tick once the fetch has ended " +
      "(ctr 1.6's content.Fetch: ShowProgress updates once more on the tick after the fetch context ends), " +
      "then unpacks: a small image's ctr pull takes 100 ms plus the unpack on either daemon when the fetch " +
      "ends within the first tick, and 200 ms plus the unpack when it ends after it.",
      "Fetch MB/s: compressed layer bytes over the time of `ctr content fetch` (Berth own CLI: " +
      "`berth images pull --skip-unpack`) on a fresh daemon. Unpack MB/s: uncompressed bytes over the time " +
      "of the `images pull` that follows on the same daemon, which finds the content present and only " +
      "unpacks (plus resolving the manifest).",
      "Encrypted: the ~200 MB image copied by Debian's `skopeo` with `--encryption-key jwe:PUB.pem` (ocicrypt: " +
      "AES-256-CTR + HMAC-SHA256 layer, RSA-OAEP-wrapped key) into the same registry, pulled by " +
      "`berth images pull --key PRIV.pem` on a fresh daemon (decrypt, gunzip, unpack). Berth only: " +
      "containerd decrypts through imgcrypt's `ctd-decoder` stream processor, which Debian does not ship. " +
      "The overhead row divides it by the plain own-CLI pull of the same run.",
      "Ceilings, no daemon: `curl -s` of the blob from the registry piped through `sha256sum` (what a " +
      "verified fetch can reach here), and GNU `tar -xzf` of the layer blob into a temp dir.",
    ],
  };
}

/** Milliseconds to fetch the big layer from the registry and hash it, in a shell pipeline. */
async function curlSha256(s: Shared, signal: AbortSignal): Promise<number> {
  const url = `${s.registry.url}/v2/berth/big/blobs/${s.image.layerDigest}`;
  const r = await must(["bash", "-c", 'set -o pipefail; curl -sf "$1" | sha256sum', "curl", url], { signal });
  const got = `sha256:${r.stdout.split(" ")[0]}`;
  if (got !== s.image.layerDigest) throw new Error(`curl of ${url} gave ${got}, not ${s.image.layerDigest}`);
  return r.ms;
}

/**
 * The big image encrypted for a fresh RSA key by skopeo (an independent ocicrypt), pushed beside the
 * plain one (.ci/run installs both skopeo and openssl for the tests).
 */
async function encryptBig(
  registry: TestRegistry,
  big: string,
  tmp: string,
  ctx: SetupContext,
): Promise<{ ref: string; key: string }> {
  const key = `${tmp}/enc-priv.pem`;
  const pub = `${tmp}/enc-pub.pem`;
  const ref = `${registry.host}/berth/big-enc:v1`;
  await must(["openssl", "genrsa", "-traditional", "-out", key, "2048"], { signal: ctx.signal });
  await must(["openssl", "rsa", "-in", key, "-pubout", "-out", pub], { signal: ctx.signal });
  await must([
    "skopeo",
    "copy",
    "--quiet",
    "--src-tls-verify=false",
    "--dest-tls-verify=false",
    "--encryption-key",
    `jwe:${pub}`,
    `docker://${big}`,
    `docker://${ref}`,
  ], { signal: ctx.signal });
  return { ref, key };
}
