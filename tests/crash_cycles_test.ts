/**
 * Issue 14's acceptance: after 20 crash-and-restart cycles during pulls, runs and removals, zero leaked
 * snapshots, mounts, cgroups, shims or folders. Each cycle starts the daemon on the same folders, starts
 * one kind of work and SIGKILLs the daemon at a seeded pseudo-random point in it; at the end the daemon
 * starts once more, the cut pulls are pulled again, everything the test made is removed with the CLI,
 * and the host is searched for what the crashes left. Shims outlive a daemon SIGKILL by design
 * (containers keep running), so what is asserted is the state once everything was removed, not which
 * tasks survived a crash.
 */
import assert from "node:assert/strict";
import { berthCommand, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { runCtr } from "./helpers/tasks.ts";
import { startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { baseEntries, compress, layerMediaType, sha256, type TarEntry, tarOf } from "./fixtures/layers.ts";
import { fillRandom } from "../bench/big_image.ts";
import { socketAddress } from "../src/core/runtime/shim_group.ts";

const CYCLES = 20;
/** BERTH_CRASH_SEED replays another sequence of kill points; the default one is what CI runs. */
const SEED = Number(Deno.env.get("BERTH_CRASH_SEED") ?? 0x14c1c1e5) >>> 0;
/** Pull cycles each pull an image of their own, so every one of them has work to do. */
const PULL_IMAGES = Math.ceil(CYCLES / 3);
/** Berth's shim lingers this long once idle: short, so the end need not wait for it, but not zero. */
const SHIM_IDLE_MS = 1_500;
const RUNC_ROOT = "/run/berth/runc";
const CGROUP_ROOT = "/sys/fs/cgroup";

type Kind = "pull" | "run" | "remove";
const KINDS: readonly Kind[] = ["pull", "run", "remove"];
/** The longest a kill waits after the work started, per kind: about as long as the work takes here. */
const KILL_WITHIN_MS: Record<Kind, number> = { pull: 1_000, run: 2_000, remove: 700 };

/** mulberry32: a small seeded generator, so a failing sequence of kill points can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds, for at most `ms`. */
async function eventually(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

/**
 * Images of four gzip layers each (busybox, two of incompressible data, one with a whiteout) in one OCI
 * layout, pushed with skopeo: `<host>/cycles/img<i>:v1`. Index 0 is the image the run cycles use.
 */
async function pushImages(registry: TestRegistry, dir: string, count: number): Promise<string[]> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const put = async (data: Uint8Array) => {
    const digest = await sha256(data);
    await Deno.writeFile(`${dir}/blobs/sha256/${digest.slice("sha256:".length)}`, data);
    return { digest, size: data.byteLength };
  };
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const base = await baseEntries();
  const manifests = [];
  for (let i = 0; i < count; i++) {
    const state = { seed: 0x5eed + i };
    const data = (name: string): TarEntry[] => {
      const files: TarEntry[] = [{ name: `${name}/`, type: "directory" }];
      for (let f = 0; f < 3; f++) {
        const content = new Uint8Array(512 << 10);
        fillRandom(content, state);
        files.push({ name: `${name}/blob-${f}.bin`, type: "file", content });
      }
      return files;
    };
    const layers = [base, data("data-a"), data("data-b"), [
      { name: "data-a/", type: "directory" },
      { name: "data-a/.wh.blob-0.bin", type: "file", content: "" },
      { name: "etc/", type: "directory" },
      { name: "etc/image", type: "file", content: `img${i}\n` },
    ] as TarEntry[]];
    const descriptors = [];
    const diffIds = [];
    for (const entries of layers) {
      const raw = await tarOf(entries);
      diffIds.push(await sha256(raw));
      descriptors.push({ mediaType: layerMediaType("gzip"), ...(await put(compress(raw, "gzip"))) });
    }
    const config = await put(json({
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
    }));
    const manifest = await put(json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: descriptors,
    }));
    manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      annotations: { "org.opencontainers.image.ref.name": `img${i}` },
    });
  }
  await Deno.writeFile(`${dir}/index.json`, json({ schemaVersion: 2, manifests }));
  return await Promise.all(manifests.map(async (_, i) => {
    const ref = `${registry.host}/cycles/img${i}:v1`;
    const out = await new Deno.Command("skopeo", {
      args: [
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${dir}:img${i}`,
        `docker://${ref}`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    assert.ok(out.success, `skopeo push ${ref}: ${new TextDecoder().decode(out.stderr)}`);
    return ref;
  }));
}

/**
 * The clients one cycle started. A daemon killed under them makes most fail on their own; what is still
 * running when the cycle ends is SIGKILLed, as a crash of the host's tooling would leave it.
 */
class Work {
  readonly #children = new Set<Deno.ChildProcess>();
  readonly #controller = new AbortController();
  readonly #tasks: Promise<unknown>[] = [];
  /** Each client's command and how it ended, for the failure message. */
  readonly outcomes: string[] = [];

  get stopped(): boolean {
    return this.#controller.signal.aborted;
  }

  /** Runs a client to completion (or until the cycle ends); its exit code, or -1 when it was cut off. */
  run(what: string, command: Deno.Command): Promise<number> {
    if (this.stopped) return Promise.resolve(-1);
    const child = command.spawn();
    this.#children.add(child);
    const done = child.output().then((o) => {
      const code = this.stopped && !o.success ? -1 : o.code;
      this.outcomes.push(`${what} ${code === -1 ? "cut off" : `exit ${code}`}`);
      return code;
    }).finally(() => this.#children.delete(child));
    this.#tasks.push(done);
    return done;
  }

  ctr(address: string, ns: string, args: string[]): Promise<number> {
    return this.run(
      args.filter((a) => !a.startsWith("io.containerd") && !a.startsWith("--")).slice(0, 3).join(" "),
      new Deno.Command("ctr", {
        args: ["--address", address, "--namespace", ns, ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
    );
  }

  /** Adds a script of several clients; errors end the script, not the test. */
  script(body: () => Promise<void>): void {
    this.#tasks.push(body().catch(() => {}));
  }

  async stop(): Promise<void> {
    this.#controller.abort();
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise((r) => timer = setTimeout(() => r("late"), 15_000));
    const all = Promise.allSettled(this.#tasks).then(() => "done");
    try {
      assert.equal(
        await Promise.race([all, deadline]),
        "done",
        "the cycle's clients did not end within 15 s",
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Debian's ctr against the daemon, in the test's namespace, killed after 30 s. */
function ctr(d: TestDaemon, ns: string, args: string[]) {
  return runCtr(d.address, ns, args);
}

async function ctrOk(d: TestDaemon, ns: string, args: string[]): Promise<string> {
  const r = await ctr(d, ns, args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Berth's CLI against the daemon, in the test's namespace, killed after 60 s. */
async function berthOk(d: TestDaemon, ns: string, args: string[]): Promise<void> {
  const child = berthCommand(["--address", d.address, "--namespace", ns, ...args]).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const out = await child.output();
    assert.ok(out.success, `berth ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  } finally {
    clearTimeout(timer);
  }
}

function lines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** The first column of a `ctr … ls` table, header dropped. */
function firstColumn(table: string): string[] {
  return lines(table).slice(1).map((l) => l.split(/\s+/)[0]!);
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

function entries(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/** The cgroup hierarchies: the v2 root, or each v1 controller's (and the hybrid's unified one). */
function cgroupHierarchies(): string[] {
  if (exists(`${CGROUP_ROOT}/cgroup.controllers`)) return [CGROUP_ROOT];
  // cpu and cpuacct are symlinks to their shared hierarchy: lstat leaves them out.
  return entries(CGROUP_ROOT).map((h) => `${CGROUP_ROOT}/${h}`).filter((p) => Deno.lstatSync(p).isDirectory);
}

/**
 * Every cgroup below the namespace's own in each hierarchy, deepest first. The namespace's folder itself
 * is runc's to leave (it removes `/<ns>/<id>` only, as with containerd).
 */
function namespaceCgroups(ns: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of entries(dir)) {
      if (!Deno.lstatSync(`${dir}/${e}`).isDirectory) continue;
      walk(`${dir}/${e}`);
      out.push(`${dir}/${e}`);
    }
  };
  for (const h of cgroupHierarchies()) walk(`${h}/${ns}`);
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Processes of this test: shims (their command line names the test's folder) and containers (its cgroups). */
function testProcesses(dir: string, ns: string): { pid: number; what: string }[] {
  const out: { pid: number; what: string }[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
      if (cmdline.includes(dir)) {
        out.push({ pid, what: `process ${pid}: ${cmdline.slice(0, 200)}` });
        continue;
      }
      const cgroup = Deno.readTextFileSync(`/proc/${pid}/cgroup`);
      if (cgroup.split("\n").some((l) => l.split(":")[2]?.startsWith(`/${ns}/`))) {
        out.push({ pid, what: `container process ${pid}: ${cmdline.slice(0, 200)}` });
      }
    } catch { /* exited */ }
  }
  return out;
}

/** The socket paths of the test's shim groups (the namespace's own, and one per run cycle). */
async function shimSockets(dir: string, ns: string, groups: readonly string[]): Promise<string[]> {
  return await Promise.all(
    [ns, ...groups].map(async (g) =>
      (await socketAddress(`${dir}/berth.sock`, ns, g)).replace(/^unix:\/\//, "")
    ),
  );
}

/** What one cycle does, with its clients' outcomes: the failure message replays the sequence. */
interface CycleLog {
  readonly cycle: number;
  readonly kind: Kind;
  readonly killAfterMs: number;
  readonly clients: string[];
}

/** What a cycle of each kind starts; the daemon is killed under it. */
interface CycleWork {
  readonly work: Work;
  readonly daemon: TestDaemon;
  readonly ns: string;
  readonly cycle: number;
  readonly runImage: string;
  /** The image a pull cycle pulls. */
  readonly pullRef: string;
  /** The shim group of a run cycle's containers. */
  readonly group: string;
}

function startWork(kind: Kind, c: CycleWork): void {
  const { work: w, daemon, ns, cycle, runImage } = c;
  const run = (args: string[]) => w.ctr(daemon.address, ns, args);
  if (kind === "pull") {
    // ctr pulls and unpacks from the client (content ingests, its own lease); Berth's CLI asks the
    // daemon's transfer service (a lease of the daemon's).
    if (cycle % 2 === 0) run(["images", "pull", "--plain-http", c.pullRef]);
    else {
      const args = [
        "--address",
        daemon.address,
        "--namespace",
        ns,
        "images",
        "pull",
        "--plain-http",
        c.pullRef,
      ];
      w.run("berth images pull", berthCommand(args));
    }
  } else if (kind === "run") {
    const annotation = ["--annotation", `io.containerd.runc.v2.group=${c.group}`];
    for (let j = 0; j < 3; j++) {
      run(["run", "-d", ...annotation, runImage, `c${cycle}-${j}`, "sleep", "1000"]);
    }
    run(["run", "--rm", ...annotation, runImage, `rm${cycle}`, "sh", "-c", "sleep 0.2"]);
    // A container without a task, whose snapshot a removal cycle removes on its own.
    run(["containers", "create", runImage, `k${cycle}`]);
  } else {
    w.script(async () => {
      const q = (args: string[]) => ctr(daemon, ns, args);
      for (const id of firstColumn((await q(["tasks", "ls"])).stdout)) {
        if (w.stopped) return;
        await run(["tasks", "kill", "-s", "SIGKILL", id]);
        await run(["tasks", "rm", "-f", id]);
      }
      for (const id of lines((await q(["containers", "ls", "-q"])).stdout)) {
        if (w.stopped) return;
        if (id.startsWith("k")) await run(["snapshots", "rm", id]);
        await run(["containers", "rm", id]);
      }
      const images = lines((await q(["images", "ls", "-q"])).stdout).filter((r) => r !== runImage);
      if (images.length && !w.stopped) await run(["images", "rm", ...images]);
    });
  }
}

/**
 * The end: pulls again what the crashes may have cut short (that resumes the ingests a daemon's pull
 * keeps for a day on purpose, so none is left behind, and shows they are sound), then removes every task,
 * container, client lease and image with the CLI and waits for the collection to take the rest.
 */
async function removeEverything(daemon: TestDaemon, ns: string, pulled: readonly string[]): Promise<void> {
  const q = (args: string[]) => ctr(daemon, ns, args);
  const leases = await ctrOk(daemon, ns, ["leases", "ls"]);
  assert.doesNotMatch(leases, /berth\.io\/daemon-lease/, "the daemon drops its own leases when it starts");
  for (const id of firstColumn((await q(["tasks", "ls"])).stdout)) {
    await q(["tasks", "kill", "-s", "SIGKILL", id]);
    await eventually(`task ${id} is deleted`, async () => {
      await q(["tasks", "rm", "-f", id]);
      return !firstColumn((await q(["tasks", "ls"])).stdout).includes(id);
    });
  }
  for (const id of lines((await q(["containers", "ls", "-q"])).stdout)) {
    await ctrOk(daemon, ns, ["containers", "rm", id]);
  }
  for (const ref of pulled) await berthOk(daemon, ns, ["images", "pull", "--plain-http", ref]);
  // Leases of ctr pulls a crash cut short (ctr gives them a day): the client's to drop, as on containerd.
  const clientLeases = firstColumn(leases);
  if (clientLeases.length) await ctrOk(daemon, ns, ["leases", "rm", ...clientLeases]);
  const images = lines(await ctrOk(daemon, ns, ["images", "ls", "-q"]));
  await ctrOk(daemon, ns, ["images", "rm", "--sync", ...images]);
  const listed = async () => ({
    snapshots: firstColumn(await ctrOk(daemon, ns, ["snapshots", "ls"])),
    content: lines(await ctrOk(daemon, ns, ["content", "ls", "-q"])),
    ingests: firstColumn(await ctrOk(daemon, ns, ["content", "active"])),
    leases: lines(await ctrOk(daemon, ns, ["leases", "ls", "-q"])),
  });
  await eventually("snapshots, content, ingests and leases are collected", async () => {
    const l = await listed();
    return Object.values(l).every((v) => v.length === 0);
  }).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(await listed())}`);
  });
}

/** What the test's daemon left on the host once stopped: processes, mounts, cgroups, folders, sockets. */
async function findLeaks(dir: string, ns: string, groups: readonly string[]): Promise<string[]> {
  // A shim whose daemon died before its first Create waits 10 s for one before it exits.
  const gone = () => testProcesses(dir, ns).length === 0;
  await eventually("no shim or container process is left", gone, 15_000).catch(() => {});
  const leaks: string[] = [];
  for (const p of testProcesses(dir, ns)) leaks.push(p.what);
  for (const m of mountsUnder(dir)) leaks.push(`mount ${m}`);
  for (const cg of namespaceCgroups(ns)) leaks.push(`cgroup ${cg}`);
  const root = `${dir}/root`;
  const state = `${dir}/state`;
  const folders: [string, string][] = [
    ["snapshot folder", `${root}/io.containerd.snapshotter.v1.overlayfs/snapshots`],
    ["snapshot folder", `${root}/io.containerd.snapshotter.v1.native/snapshots`],
    ["ingest", `${root}/io.containerd.content.v1.content/ingest`],
    ["blob", `${root}/io.containerd.content.v1.content/blobs/sha256`],
    ["bundle", `${state}/io.containerd.runtime.v2.task/${ns}`],
    ["work folder", `${root}/io.containerd.runtime.v2.task/${ns}`],
    ["differ temp", `${state}/io.containerd.differ.v1.walking`],
    ["runc state", `${RUNC_ROOT}/${ns}`],
  ];
  for (const [what, folder] of folders) {
    for (const e of entries(folder)) leaks.push(`${what} ${folder}/${e}`);
  }
  // Shims remove the namespace's runc folder with its last container: none is left, empty or not.
  if (exists(`${RUNC_ROOT}/${ns}`)) leaks.push(`runc state folder ${RUNC_ROOT}/${ns}`);
  for (const socket of await shimSockets(dir, ns, groups)) {
    if (exists(socket)) leaks.push(`shim socket ${socket}`);
  }
  return leaks;
}

/** Removes whatever the test left, found or not: its processes by pid, mounts, cgroups, runc state, folders. */
async function cleanHost(dir: string, ns: string, groups: readonly string[]): Promise<void> {
  for (const p of testProcesses(dir, ns)) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch { /* exited */ }
  }
  await sleep(200);
  for (const m of mountsUnder(dir).reverse()) {
    await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output();
  }
  for (const cg of [...namespaceCgroups(ns), ...cgroupHierarchies().map((h) => `${h}/${ns}`)]) {
    await Deno.remove(cg).catch(() => {});
  }
  await Deno.remove(`${RUNC_ROOT}/${ns}`, { recursive: true }).catch(() => {});
  for (const socket of await shimSockets(dir, ns, groups)) await Deno.remove(socket).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

Deno.test({
  name: "After 20 crash-and-restart cycles during pulls, runs and removals nothing is leaked",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "berth-cycles-" });
    const ns = `cyc${crypto.randomUUID().slice(0, 8)}`;
    const random = seeded(SEED);
    const env = { BERTH_SHIM_IDLE_MS: String(SHIM_IDLE_MS) };
    // The daemon's own defaults (start-up collection included), as a host runs it.
    const config = "version = 2\n";
    // Each run cycle's containers get a shim group (so a shim of their own) that no later cycle joins:
    // a shim a crash orphaned would otherwise be adopted by the next run and go unnoticed.
    const groups: string[] = [];
    const log: CycleLog[] = [];
    const replay = () =>
      `seed ${SEED} (BERTH_CRASH_SEED replays it):\n` +
      log.map((c) => `cycle ${c.cycle} ${c.kind}, killed after ${c.killAfterMs} ms: ${c.clients.join("; ")}`)
        .join("\n");
    let registry: TestRegistry | undefined;
    let d: TestDaemon | undefined;
    let work: Work | undefined;
    try {
      registry = await startRegistry();
      const refs = await pushImages(registry, `${dir}/layout`, PULL_IMAGES + 1);
      const runImage = refs[0]!;
      const pulled: string[] = [];
      d = await startDaemon({ dir, config, env });
      await ctrOk(d, ns, ["images", "pull", "--plain-http", runImage]);

      for (let cycle = 0; cycle < CYCLES; cycle++) {
        if (cycle > 0) d = await startDaemon({ dir, config, env });
        const kind = KINDS[cycle % KINDS.length]!;
        const killAfterMs = Math.floor(random() * KILL_WITHIN_MS[kind]);
        const pullRef = refs[pulled.length + 1]!;
        if (kind === "pull") pulled.push(pullRef);
        const group = `g${cycle}`;
        if (kind === "run") groups.push(group);
        work = new Work();
        startWork(kind, { work, daemon: d, ns, cycle, runImage, pullRef, group });
        await sleep(killAfterMs);
        await d.stop("SIGKILL");
        await work.stop();
        log.push({ cycle, kind, killAfterMs, clients: work.outcomes });
        work = undefined;
      }

      d = await startDaemon({ dir, config, env });
      await removeEverything(d, ns, pulled).catch((err) => {
        throw new Error(`${(err as Error).message}\n${replay()}`);
      });
      assert.equal(await d.stop(), 0, "the daemon stops cleanly on SIGTERM");
      d = undefined;
      assert.deepEqual(await findLeaks(dir, ns, groups), [], replay());
    } finally {
      await work?.stop().catch(() => {});
      await d?.stop("SIGKILL");
      await registry?.stop();
      await cleanHost(dir, ns, groups);
    }
  },
});
