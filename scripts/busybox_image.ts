/**
 * Builds a runnable busybox image from the host's busybox-static, as an OCI image-layout tarball that
 * `berth images import` (or `ctr images import`) reads. No registry or download is involved.
 *
 *   deno run -A scripts/busybox_image.ts OUT.tar [NAME]     (NAME: docker.io/library/busybox:latest)
 */
import {
  baseEntries,
  BUSYBOX,
  compress,
  layerMediaType,
  sha256,
  type TarEntry,
  tarOf,
} from "../tests/fixtures/layers.ts";

const [out, name = "docker.io/library/busybox:latest"] = Deno.args;
if (!out) {
  console.error("usage: busybox_image.ts OUT.tar [NAME]");
  Deno.exit(2);
}
try {
  await Deno.stat(BUSYBOX);
} catch {
  console.error(`Cannot build the busybox image: ${BUSYBOX} is missing; install Debian's busybox-static`);
  Deno.exit(1);
}

// Every applet busybox offers, so the image has a usable shell and tools.
const list = await new Deno.Command(BUSYBOX, { args: ["--list"], stdout: "piped" }).output();
const applets = new TextDecoder().decode(list.stdout).split("\n").filter((a) => /^[\w.[-]+$/.test(a));
const entries = await baseEntries();
const have = new Set(entries.map((e) => e.name));
for (const a of applets) {
  if (!have.has(`bin/${a}`) && a !== "busybox") {
    entries.push({ name: `bin/${a}`, type: "symlink", linkname: "busybox" });
  }
}
entries.push({ name: "root/", type: "directory", mode: 0o700 }, { name: "proc/", type: "directory" }, {
  name: "sys/",
  type: "directory",
}, { name: "dev/", type: "directory" });

const layerTar = await tarOf(entries);
const layer = compress(layerTar, "gzip");
const enc = new TextEncoder();
const config = enc.encode(JSON.stringify({
  architecture: Deno.build.arch === "aarch64" ? "arm64" : "amd64",
  os: "linux",
  config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
  rootfs: { type: "layers", diff_ids: [await sha256(layerTar)] },
  history: [{ created_by: "berth scripts/busybox_image.ts" }],
}));
const manifest = enc.encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: await sha256(config),
    size: config.length,
  },
  layers: [{ mediaType: layerMediaType("gzip"), digest: await sha256(layer), size: layer.length }],
}));
const manifestDigest = await sha256(manifest);
const index = enc.encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: manifestDigest,
    size: manifest.length,
    annotations: {
      "io.containerd.image.name": name,
      "org.opencontainers.image.ref.name": name.replace(/^.*:/, ""),
    },
  }],
}));

const blob = async (data: Uint8Array): Promise<TarEntry> => ({
  name: `blobs/sha256/${(await sha256(data)).slice(7)}`,
  type: "file",
  content: data,
});
const archive = await tarOf([
  { name: "oci-layout", type: "file", content: '{"imageLayoutVersion":"1.0.0"}' },
  { name: "index.json", type: "file", content: index },
  { name: "blobs/", type: "directory" },
  { name: "blobs/sha256/", type: "directory" },
  await blob(config),
  await blob(layer),
  await blob(manifest),
]);
await Deno.writeFile(out, archive);
console.log(`${out}: ${name} (${manifestDigest})`);
