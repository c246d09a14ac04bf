/**
 * Makes the golden OCI specs of src/core/cri/testdata/specs: containerd 1.6's own CRI plugin (Debian's
 * containerd, on private folders and socket) builds the pods and containers of
 * src/core/cri/testdata/spec_cases.json, requested by a real CRI client (tests/go/cri/crispec); their
 * specs are read back with `ctr containers info`, made host-independent (ids, pids and temp paths
 * become placeholders) and written next to the facts of this host they depend on (spec_host.json).
 * Everything made is removed again: pods, containerd, its folders, mounts, cgroups and the bridge.
 *
 *   sudo deno run -A scripts/cri_spec_goldens.ts           # as root; needs containerd, runc, Go, CNI plugins
 *   sudo deno run -A scripts/cri_spec_goldens.ts --check   # compare with the committed goldens instead
 *                                                          # (exit 2: this host's facts differ, no verdict)
 *
 * src/core/cri/container_spec_test.ts then checks that Berth builds the same specs from the same inputs.
 */
import {
  baseEntries,
  compress,
  layerMediaType,
  sha256,
  type TarEntry,
  tarOf,
} from "../tests/fixtures/layers.ts";
import { buildCriGoTests, runGoTest } from "../tests/helpers/go_client.ts";
import { hostSpecFacts } from "../src/core/cri/spec_host.ts";
import { lookupMount, selfMountInfo } from "../src/core/mount/mod.ts";

const TESTDATA = new URL("../src/core/cri/testdata/", import.meta.url).pathname;
const CASES = `${TESTDATA}spec_cases.json`;
const BRIDGE = "berthgold0";
const SUBNET = "10.231.77.0/24";
const CGROUP_PARENT = "berth-goldens";

interface ImageDef {
  readonly config: Record<string, unknown>;
  readonly files?: Record<string, string>;
}

interface CasesFile {
  readonly images: Record<string, ImageDef>;
  readonly host_files: Record<string, string>;
  readonly host_symlinks: Record<string, string>;
  readonly cri: Record<string, boolean | string>;
  readonly runtimes: Record<string, {
    pod_annotations: string[];
    container_annotations: string[];
    privileged_without_host_devices: boolean;
  }>;
  readonly cases: { name: string; containers: { name: string; target?: string; error?: string }[] }[];
}

interface Made {
  readonly case: string;
  readonly sandbox: string;
  readonly containers: Record<string, string>;
  readonly errors: Record<string, string>;
}

const cases = JSON.parse(await Deno.readTextFile(CASES)) as CasesFile;
const dec = new TextDecoder();

async function run(cmd: string, args: string[], options: { allowFail?: boolean } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr).trim()}`);
  }
  return dec.decode(out.stdout);
}

// ---- images -----------------------------------------------------------------------------------------

/** One OCI archive holding every image of the cases, named as `ctr images import` reads the names. */
async function imageArchive(path: string): Promise<void> {
  const base = await baseEntries();
  const blobs = new Map<string, Uint8Array>();
  const put = async (data: Uint8Array) => {
    const digest = await sha256(data);
    blobs.set(digest, data);
    return { digest, size: data.byteLength };
  };
  const enc = new TextEncoder();
  const manifests = [];
  for (const [name, def] of Object.entries(cases.images)) {
    const entries: TarEntry[] = base.filter((e) => !(def.files && e.name in def.files));
    for (const [file, content] of Object.entries(def.files ?? {})) {
      entries.push({ name: file, type: "file", content });
    }
    const layerTar = await tarOf(entries);
    const layer = await put(compress(layerTar, "gzip"));
    const config = await put(enc.encode(JSON.stringify({
      architecture: Deno.build.arch === "aarch64" ? "arm64" : "amd64",
      os: "linux",
      config: def.config,
      rootfs: { type: "layers", diff_ids: [await sha256(layerTar)] },
    })));
    const manifest = await put(enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: layerMediaType("gzip"), ...layer }],
    })));
    manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      annotations: {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.replace(/^.*:/, ""),
      },
    });
  }
  const entries: TarEntry[] = [
    { name: "oci-layout", type: "file", content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: "index.json", type: "file", content: JSON.stringify({ schemaVersion: 2, manifests }) },
    { name: "blobs/", type: "directory" },
    { name: "blobs/sha256/", type: "directory" },
  ];
  for (const [digest, data] of blobs) {
    entries.push({ name: `blobs/sha256/${digest.slice("sha256:".length)}`, type: "file", content: data });
  }
  await Deno.writeFile(path, await tarOf(entries));
}

// ---- containerd -------------------------------------------------------------------------------------

function containerdConfig(dir: string): string {
  const runtimes = Object.entries(cases.runtimes).map(([name, r]) =>
    `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}]
  runtime_type = "io.containerd.runc.v2"
  pod_annotations = ${JSON.stringify(r.pod_annotations)}
  container_annotations = ${JSON.stringify(r.container_annotations)}
  privileged_without_host_devices = ${r.privileged_without_host_devices}
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}.options]
  Root = "${dir}/runc"
`
  ).join("");
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${dir}/containerd.sock"
[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "berth.test/pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
${
    Object.entries(cases.cri).map(([k, v]) => `  ${k} = ${JSON.stringify(v)}\n`).join("")
  }[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
${runtimes}[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "${dir}/cni"
`;
}

async function waitForSocket(path: string, child: Deno.ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`containerd exited:\n${await Deno.readTextFile(log)}`);
    try {
      if ((await Deno.stat(path)).isSocket) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`containerd did not serve ${path} within 20 s`);
}

// ---- normalisation ----------------------------------------------------------------------------------

/** Replaces every key of `map` by its value in the JSON text, longest first. */
function replaceAll(text: string, map: ReadonlyMap<string, string>): string {
  for (const [from, to] of [...map].sort((a, b) => b[0].length - a[0].length)) {
    text = text.replaceAll(from, to);
  }
  return text;
}

// deno-lint-ignore no-explicit-any
type Json = any;

function normalise(spec: Json, map: ReadonlyMap<string, string>, hostname: string): Json {
  let text = JSON.stringify(spec);
  text = replaceAll(text, map);
  text = text.replace(/\/netns\/cni-[0-9a-f-]+/g, "/netns/<netns>");
  text = text.replaceAll(`"HOSTNAME=${hostname}"`, '"HOSTNAME=<hostname>"');
  const out = JSON.parse(text);
  for (const m of out.mounts ?? []) {
    const v = /\/volumes\/[0-9a-f]{64}$/.exec(m.source ?? "");
    if (v) m.source = m.source.replace(/[0-9a-f]{64}$/, `<volume:${m.destination}>`);
  }
  return out;
}

// ---- the run ----------------------------------------------------------------------------------------

if (Deno.uid() !== 0) {
  console.error("cri_spec_goldens: run as root (containerd's CRI needs mounts, namespaces, cgroups)");
  Deno.exit(1);
}
const tmp = await Deno.makeTempDir({ prefix: "berth-crispec-" });
const sock = `${tmp}/containerd.sock`;
const log = `${tmp}/containerd.log`;
let containerd: Deno.ChildProcess | undefined;
const ctr = (...args: string[]) => run("ctr", ["-a", sock, "-n", "k8s.io", ...args]);
const specs = new Map<string, Json>();
const pids = new Map<string, string>();
let made: Made[] = [];
/** The optional fields of the mounts the propagation cases use, as Berth's lookup sees them. */
const propagationFacts: Record<string, { mountpoint: string; optional: string }> = {};
try {
  for (
    const d of ["root", "state", "runc", "opt", "cni", "shared", "private", "vol/rw", "files", "logs", "ipam"]
  ) {
    await Deno.mkdir(`${tmp}/${d}`, { recursive: true });
  }
  // Propagation checks look at the mount a volume is on: one shared and one private mount, so the
  // goldens do not depend on how this host mounts /tmp.
  await run("mount", ["-t", "tmpfs", "berth-shared", `${tmp}/shared`]);
  await run("mount", ["--make-shared", `${tmp}/shared`]);
  await run("mount", ["-t", "tmpfs", "berth-private", `${tmp}/private`]);
  await run("mount", ["--make-private", `${tmp}/private`]);
  const mounts = await selfMountInfo();
  for (const d of ["shared", "private"]) {
    const m = lookupMount(`${tmp}/${d}/x`, mounts);
    propagationFacts[`<tmp>/${d}`] = {
      mountpoint: m.mountpoint.replace(tmp, "<tmp>"),
      // The peer group numbers are this boot's: only the kind matters.
      optional: m.optional.replace(/(shared|master):\d+/g, "$1:1"),
    };
  }
  for (const [file, content] of Object.entries(cases.host_files)) {
    await Deno.writeTextFile(`${tmp}/${file}`, content);
  }
  for (const [link, target] of Object.entries(cases.host_symlinks)) {
    await Deno.symlink(target, `${tmp}/${link}`);
  }
  await Deno.writeTextFile(
    `${tmp}/cni/10-goldens.conflist`,
    JSON.stringify({
      cniVersion: "0.4.0",
      name: "berth-goldens",
      plugins: [{
        type: "bridge",
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet: SUBNET }]], dataDir: `${tmp}/ipam` },
      }],
    }),
  );
  await Deno.writeTextFile(`${tmp}/containerd.toml`, containerdConfig(tmp));
  await imageArchive(`${tmp}/images.tar`);
  containerd = new Deno.Command("sh", {
    args: ["-c", `exec containerd --config "$1" 2>"$2"`, "sh", `${tmp}/containerd.toml`, log],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitForSocket(sock, containerd, log);
  await ctr("images", "import", `${tmp}/images.tar`);
  // The CRI learns of imported images from containerd's events.
  await new Promise((r) => setTimeout(r, 1000));

  const bin = await buildCriGoTests("crispec");
  const result = await runGoTest(bin, "TestSpecGoldens", {
    args: ["-endpoint", sock, "-cases", CASES, "-tmp", tmp, "-out", `${tmp}/made.json`],
    timeoutMs: 600_000,
    driver: async (what) => {
      if (what !== "collect") throw new Error(`unexpected AWAIT ${what}`);
      made = JSON.parse(await Deno.readTextFile(`${tmp}/made.json`));
      for (const m of made) {
        for (const id of [m.sandbox, ...Object.values(m.containers)]) {
          specs.set(id, JSON.parse(await ctr("containers", "info", id)).Spec);
        }
      }
      for (const line of (await ctr("tasks", "ls")).split("\n").slice(1)) {
        const [id, pid] = line.trim().split(/\s+/);
        if (id && pid) pids.set(id, pid);
      }
    },
  });
  if (!result.passed) throw new Error(`The CRI client failed:\n${result.output}`);
} catch (err) {
  const text = await Deno.readTextFile(log).catch(() => "");
  console.error(`containerd's log ends:\n${text.split("\n").slice(-40).join("\n")}`);
  throw err;
} finally {
  await cleanUp();
}

const host = hostSpecFacts();
const hostname = host.hostname();
// With --check the files go to a temp folder and are compared with the committed ones.
const check = Deno.args.includes("--check");
const target = check ? `${await Deno.makeTempDir({ prefix: "berth-crispec-check-" })}/` : TESTDATA;
const outDir = `${target}specs`;
await Deno.remove(outDir, { recursive: true }).catch(() => {});
await Deno.mkdir(outDir, { recursive: true });
const errors: Record<string, string> = {};
for (const m of made) {
  const c = cases.cases.find((c) => c.name === m.case)!;
  const base = new Map([[`${tmp}/root`, "<root>"], [`${tmp}/state`, "<state>"], [tmp, "<tmp>"], [
    m.sandbox,
    "<sandbox-id>",
  ]]);
  const sandboxPid = pids.get(m.sandbox);
  if (sandboxPid) base.set(`/proc/${sandboxPid}/`, "/proc/<sandbox-pid>/");
  await Deno.mkdir(`${outDir}/${m.case}`, { recursive: true });
  const write = (name: string, spec: Json) =>
    Deno.writeTextFile(`${outDir}/${m.case}/${name}.json`, JSON.stringify(spec, null, 2) + "\n");
  await write("sandbox", normalise(specs.get(m.sandbox), base, hostname));
  for (const cc of c.containers) {
    const id = m.containers[cc.name];
    if (id === undefined) continue;
    const map = new Map(base);
    map.set(id, "<container-id>");
    const target = cc.target ? pids.get(m.containers[cc.target]!) : undefined;
    if (target) map.set(`/proc/${target}/`, "/proc/<target-pid>/");
    await write(cc.name, normalise(specs.get(id), map, hostname));
  }
  for (const [name, message] of Object.entries(m.errors)) {
    errors[`${m.case}/${name}`] = replaceAll(message, base).replace(/[0-9a-f]{64}/g, "<container-id>");
  }
}
await Deno.writeTextFile(`${outDir}/errors.json`, JSON.stringify(errors, null, 2) + "\n");

// What the specs depend on besides the requests: the facts of this host, which the unit tests replay.
const devices = await host.hostDevices();
const privileged = JSON.parse(await Deno.readTextFile(`${outDir}/privileged/privileged.json`));
// containerd's own walk of /dev and its capabilities must be what Berth's probes see here.
const fromContainerd = privileged.linux.devices.slice(1);
if (JSON.stringify(fromContainerd) !== JSON.stringify(devices)) {
  throw new Error("Berth's /dev walk differs from containerd's host devices: compare privileged.json");
}
if (JSON.stringify(privileged.process.capabilities.bounding) !== JSON.stringify(host.capabilities())) {
  throw new Error("Berth's capability probe differs from containerd's current capabilities");
}
await Deno.writeTextFile(
  `${target}spec_host.json`,
  JSON.stringify(
    {
      about:
        "The facts of the host that made specs/ (scripts/cri_spec_goldens.ts), replayed by container_spec_test.ts",
      capabilities: host.capabilities(),
      kernelRelease: host.kernelRelease(),
      arch: host.arch(),
      seccompEnabled: host.seccompEnabled(),
      apparmorEnabled: host.apparmorEnabled(),
      cgroupUnified: host.cgroupUnified(),
      swapControllerAvailable: host.swapControllerAvailable(),
      hugetlbControllerPresent: host.hugetlbControllerPresent(),
      oomScoreAdj: host.oomScoreAdj(),
      propagation: propagationFacts,
      hostDevices: devices,
    },
    null,
    2,
  ) + "\n",
);
if (check) {
  const hostDiff = await new Deno.Command("diff", {
    args: ["-u", `${TESTDATA}spec_host.json`, `${target}spec_host.json`],
    stdout: "inherit",
  }).output();
  const diff = hostDiff.success
    ? await new Deno.Command("diff", {
      args: ["-ru", `${TESTDATA}specs`, outDir],
      stdout: "inherit",
      stderr: "inherit",
    }).output()
    : undefined;
  await Deno.remove(target, { recursive: true });
  if (!diff) {
    // Other facts give other specs (cgroup v2, another /dev): nothing to compare on this host.
    console.error("This host's facts differ from those of the goldens' host (above): not compared");
    Deno.exit(2);
  }
  console.log(
    diff.success ? "The goldens are containerd's specs" : "The goldens differ from containerd's specs",
  );
  Deno.exit(diff.success ? 0 : 1);
}
console.log(`Wrote ${made.length} pods' specs to ${outDir}`);

// ---- clean-up ---------------------------------------------------------------------------------------

async function cleanUp(): Promise<void> {
  // What containerd still has (after a failed run): killed and deleted through it.
  const ids = new Set(made.flatMap((m) => [m.sandbox, ...Object.values(m.containers)]));
  if (containerd) {
    const listed = await ctr("containers", "ls", "-q").catch(() => "");
    for (const id of listed.split("\n").filter((l) => l !== "")) {
      ids.add(id);
      await ctr("tasks", "kill", "-s", "SIGKILL", id).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const id of ids) {
      await ctr("tasks", "delete", "-f", id).catch(() => {});
      await ctr("containers", "delete", id).catch(() => {});
    }
  }
  if (containerd) {
    try {
      containerd.kill("SIGTERM");
    } catch { /* gone */ }
    await containerd.status;
  }
  // Shims outlive containerd; any of ours left (a failed run) is found by its socket address.
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmdline.includes(sock) && cmdline.includes("containerd-shim")) Deno.kill(Number(e.name), "SIGKILL");
    } catch { /* exited */ }
  }
  // Deepest first: snapshot, shm and netns mounts under our folders, then the tmpfs of the script.
  const ours = (await selfMountInfo()).map((m) => m.mountpoint).filter((p) => p.startsWith(tmp + "/"))
    .sort((a, b) => b.length - a.length);
  for (const p of ours) await run("umount", ["-l", p], { allowFail: true });
  for (const controller of Deno.readDirSync("/sys/fs/cgroup")) {
    await removeCgroup(`/sys/fs/cgroup/${controller.name}/${CGROUP_PARENT}`);
    for (const id of ids) await removeCgroup(`/sys/fs/cgroup/${controller.name}/k8s.io/${id}`);
  }
  await run("ip", ["link", "del", BRIDGE], { allowFail: true });
  for (const id of ids) await Deno.remove(`/var/lib/cni/results/berth-goldens-${id}-eth0`).catch(() => {});
  await Deno.remove(tmp, { recursive: true }).catch((err) => console.error(`Cannot remove ${tmp}: ${err}`));
}

/** Removes a cgroup of ours, killing (by pid) what still runs in it when a shim died first. */
async function removeCgroup(path: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(path)];
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory) await removeCgroup(`${path}/${e.name}`);
  const procs = await Deno.readTextFile(`${path}/cgroup.procs`).catch(() => "");
  for (const pid of procs.split("\n").filter((p) => p !== "")) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch { /* exited */ }
  }
  for (let i = 0; i < 20; i++) {
    try {
      await Deno.remove(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
