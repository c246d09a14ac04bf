/**
 * One conformance suite for every Snapshotter, after containerd's core/snapshots/testsuite: each case
 * gets a fresh database, root and work folder, mounts for real, and is cleaned up even on failure.
 * Use: `snapshotterSuite("overlayfs", (root, db) => new OverlaySnapshotter(root, db))` in a _test.ts.
 */
import assert from "node:assert/strict";
import { MetadataDB } from "../metadata/db.ts";
import { type ErrorKind, errorKind } from "../../base/errors.ts";
import { type Mount, mountAll, unmountAll } from "../mount/mod.ts";
import { MNT_DETACH } from "../../../ffi/mount.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import { realtimeNanos } from "../../../ffi/clock.ts";
import type { Snapshotter } from "./snapshotter.ts";

const EBUSY = 16;

export type SnapshotterFactory = (root: string, db: MetadataDB) => Snapshotter | Promise<Snapshotter>;

interface Ctx {
  readonly sn: Snapshotter;
  readonly work: string;
  readonly root: string;
  /** Mounts `mounts` on a new folder under work; unmounted by the harness if the case forgets. */
  mount(mounts: Mount[], name: string): Promise<string>;
  unmount(dir: string): void;
}

type Case = (ctx: Ctx) => Promise<void>;

const NS = "testsuite";

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(errorKind(err), kind, `expected ${kind}, got ${String(err)}`);
    assert.match((err as Error).message, /^[A-Z]/);
    return true;
  });
}

/** A tree as a sorted list of "path type mode uid:gid [content|target]" lines, for comparing two trees. */
async function describeTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string) => {
    for await (const e of Deno.readDir(`${dir}${rel}`)) {
      const p = `${rel}/${e.name}`;
      const st = await Deno.lstat(`${dir}${p}`);
      const mode = (st.mode! & 0o7777).toString(8);
      if (st.isSymlink) out.push(`${p} l ${st.uid}:${st.gid} -> ${await Deno.readLink(`${dir}${p}`)}`);
      else if (st.isDirectory) {
        out.push(`${p} d ${mode} ${st.uid}:${st.gid}`);
        await visit(p);
      } else out.push(`${p} f ${mode} ${st.uid}:${st.gid} ${await Deno.readTextFile(`${dir}${p}`)}`);
    }
  };
  await visit("");
  return out.sort();
}

type Apply = (dir: string) => Promise<void>;

/**
 * Applies each layer both to a plain folder and to a chain of snapshots (prepare, mount, apply,
 * commit), then checks that a view of every committed snapshot looks like the plain folder did.
 */
async function checkLayers(ctx: Ctx, layers: Apply[]): Promise<void> {
  const flat = `${ctx.work}/flat`;
  await Deno.mkdir(flat);
  let parent = "";
  for (const [i, apply] of layers.entries()) {
    const key = `layer-${i}-active`;
    const dir = await ctx.mount(await ctx.sn.prepare(NS, key, { parent }), `prep-${i}`);
    try {
      await apply(dir);
    } finally {
      ctx.unmount(dir);
    }
    await apply(flat);
    await ctx.sn.commit(NS, `layer-${i}`, { key });
    parent = `layer-${i}`;
    const view = await ctx.mount(await ctx.sn.view(NS, `view-${i}`, { parent }), `view-${i}`);
    try {
      assert.deepEqual(await describeTree(view), await describeTree(flat), `layer ${i}`);
    } finally {
      ctx.unmount(view);
    }
  }
}

const cases: Record<string, Case> = {
  "prepare, commit and view see each layer's files": async (ctx) => {
    const { sn } = ctx;
    const a = await ctx.mount(await sn.prepare(NS, "a-active", { labels: { l: "1" } }), "a");
    await Deno.mkdir(`${a}/etc`);
    await Deno.writeTextFile(`${a}/etc/hosts`, "one");
    ctx.unmount(a);
    await sn.commit(NS, "a", { key: "a-active" });
    await rejectsWith(sn.stat(NS, "a-active"), "not_found");

    const b = await ctx.mount(await sn.prepare(NS, "b-active", { parent: "a" }), "b");
    assert.equal(await Deno.readTextFile(`${b}/etc/hosts`), "one");
    await Deno.writeTextFile(`${b}/etc/hosts`, "two");
    await Deno.writeTextFile(`${b}/new`, "n");
    ctx.unmount(b);
    await sn.commit(NS, "b", { key: "b-active" });

    const v = await ctx.mount(await sn.view(NS, "v", { parent: "b" }), "v");
    assert.equal(await Deno.readTextFile(`${v}/etc/hosts`), "two");
    assert.equal(await Deno.readTextFile(`${v}/new`), "n");
    ctx.unmount(v);
    const va = await ctx.mount(await sn.view(NS, "va", { parent: "a" }), "va");
    assert.equal(await Deno.readTextFile(`${va}/etc/hosts`), "one");
    await assert.rejects(Deno.stat(`${va}/new`), Deno.errors.NotFound);
    ctx.unmount(va);

    const names: string[] = [];
    await sn.walk(NS, (i) => void names.push(i.name));
    assert.deepEqual(names.sort(), ["a", "b", "v", "va"]);
  },

  "stat reports kind, parent and name of active and committed snapshots": async ({ sn }) => {
    await sn.prepare(NS, "p", {});
    const active = await sn.stat(NS, "p");
    assert.deepEqual([active.name, active.kind, active.parent], ["p", "active", ""]);
    await sn.commit(NS, "c", { key: "p" });
    await sn.prepare(NS, "child", { parent: "c" });
    const child = await sn.stat(NS, "child");
    assert.deepEqual([child.kind, child.parent], ["active", "c"]);
    const c = await sn.stat(NS, "c");
    assert.deepEqual([c.kind, c.parent], ["committed", ""]);
    await rejectsWith(sn.stat(NS, "missing"), "not_found");
  },

  "parents are transitive": async ({ sn }) => {
    await sn.prepare(NS, "a-p", {});
    await sn.commit(NS, "a", { key: "a-p" });
    await sn.prepare(NS, "b-p", { parent: "a" });
    await sn.commit(NS, "b", { key: "b-p" });
    const b = await sn.stat(NS, "b");
    assert.equal(b.parent, "a");
    assert.equal((await sn.stat(NS, b.parent)).parent, "");
  },

  "a key already taken by prepare or view is alreadyExists": async ({ sn }) => {
    await sn.prepare(NS, "base-p", {});
    await sn.commit(NS, "base", { key: "base-p" });
    await sn.prepare(NS, "k", { parent: "base" });
    await rejectsWith(sn.view(NS, "k", { parent: "base" }), "already_exists");
    await rejectsWith(sn.prepare(NS, "k", { parent: "base" }), "already_exists");
    await sn.view(NS, "v", { parent: "base" });
    await rejectsWith(sn.view(NS, "v", { parent: "base" }), "already_exists");
    await rejectsWith(sn.prepare(NS, "base", {}), "already_exists");
    await sn.prepare(NS, "x", {});
    await rejectsWith(sn.commit(NS, "base", { key: "x" }), "already_exists");
  },

  "a parent that is missing or not committed is rejected": async ({ sn }) => {
    await rejectsWith(sn.prepare(NS, "k", { parent: "nope" }), "not_found");
    await sn.prepare(NS, "active", {});
    await rejectsWith(sn.prepare(NS, "k", { parent: "active" }), "invalid_argument");
    await sn.view(NS, "view", {});
    await rejectsWith(sn.view(NS, "k", { parent: "view" }), "invalid_argument");
    await rejectsWith(sn.commit(NS, "c", { key: "view" }), "failed_precondition");
    await rejectsWith(sn.commit(NS, "c", { key: "nope" }), "not_found");
    await sn.commit(NS, "c", { key: "active" });
    await rejectsWith(sn.mounts(NS, "c"), "failed_precondition");
    await rejectsWith(sn.prepare(NS, "", {}), "invalid_argument");
  },

  "update replaces labels or single label paths and refuses immutable fields": async ({ sn }) => {
    const t1 = realtimeNanos();
    await sn.prepare(NS, "c1-a", {});
    await sn.commit(NS, "c1", { key: "c1-a", labels: { keep: "x" } });
    await sn.prepare(NS, "a1", { parent: "c1" });
    await sn.view(NS, "v1", { parent: "c1" });
    const t2 = realtimeNanos();
    for (const name of ["c1", "a1", "v1"]) {
      const st = await sn.stat(NS, name);
      // To the nanosecond, as containerd's suite compares them with the client's time.Now().
      assert.ok(st.created >= t1 && st.created <= t2, `${t1} <= ${st.created} <= ${t2}`);
      assert.equal(st.updated, st.created);
      let up = await sn.update(NS, {
        ...st,
        parent: "doesnotexist",
        labels: { l1: "v1", l2: "v2", l3: "v3" },
      });
      assert.deepEqual(up.labels, { l1: "v1", l2: "v2", l3: "v3" });
      assert.equal(up.parent, st.parent);
      assert.equal(up.created, st.created);
      assert.ok(up.updated > st.created);
      up = await sn.update(NS, { ...up, labels: { l1: "updated", l4: "v4" } }, {
        fieldpaths: ["labels.l1", "labels.l2"],
      });
      assert.deepEqual(up.labels, { l1: "updated", l3: "v3" });
      up = await sn.update(NS, { ...up, labels: { l4: "v4" } }, { fieldpaths: ["labels"] });
      assert.deepEqual(up.labels, { l4: "v4" });
      assert.deepEqual((await sn.stat(NS, name)).labels, { l4: "v4" });
      await rejectsWith(
        sn.update(NS, { ...up, parent: "x" }, { fieldpaths: ["parent"] }),
        "invalid_argument",
      );
    }
    await rejectsWith(sn.update(NS, { ...(await sn.stat(NS, "c1")), name: "nope" }), "not_found");
  },

  "removed keys and names can be reused": async ({ sn }) => {
    await sn.prepare(NS, "committed-a", {});
    await sn.commit(NS, "committed-1", { key: "committed-a" });
    await sn.prepare(NS, "reuse-1", { parent: "committed-1" });
    await sn.remove(NS, "reuse-1");
    await sn.view(NS, "reuse-1", { parent: "committed-1" });
    await sn.remove(NS, "reuse-1");
    await sn.prepare(NS, "reuse-1", {});
    await sn.remove(NS, "committed-1");
    await sn.commit(NS, "committed-1", { key: "reuse-1" });
    await rejectsWith(sn.remove(NS, "reuse-1"), "not_found");
  },

  "removing a snapshot with children is failedPrecondition": async ({ sn }) => {
    await sn.prepare(NS, "base-a", {});
    await sn.commit(NS, "base", { key: "base-a" });
    await sn.prepare(NS, "inter-a", { parent: "base" });
    await sn.commit(NS, "inter", { key: "inter-a" });
    await sn.prepare(NS, "top", { parent: "inter" });
    await rejectsWith(sn.remove(NS, "inter"), "failed_precondition");
    await sn.remove(NS, "top");
    await sn.remove(NS, "inter");
    await sn.remove(NS, "base");
    const left: string[] = [];
    await sn.walk(NS, (i) => void left.push(i.name));
    assert.deepEqual(left, []);
  },

  "walk matches containerd filters": async ({ sn }) => {
    const gc = { "containerd.io/gc.root": "check-walk" };
    await sn.prepare(NS, "a-np", { labels: gc });
    await sn.prepare(NS, "p-tmp", { labels: gc });
    await sn.commit(NS, "p", { key: "p-tmp", labels: gc });
    await sn.prepare(NS, "a", { parent: "p", labels: gc });
    await sn.view(NS, "v", { parent: "p", labels: gc });
    await sn.prepare(NS, "p-wl-tmp", { labels: gc });
    await sn.commit(NS, "p-wl", { key: "p-wl-tmp", labels: { l: "1", ...gc } });
    await sn.prepare(NS, "a-wl", { parent: "p-wl", labels: { l: "2", ...gc } });
    await sn.view(NS, "v-wl", { parent: "p-wl", labels: { l: "3", ...gc } });
    await sn.prepare(NS, "a-np-wl", { labels: { l: "2", ...gc } });
    const table: [string[], string[]][] = [
      [['labels."containerd.io/gc.root"==check-walk'], [
        "a-np",
        "p",
        "a",
        "v",
        "p-wl",
        "a-wl",
        "v-wl",
        "a-np-wl",
      ]],
      [['kind==active,labels."containerd.io/gc.root"==check-walk'], ["a-np", "a", "a-wl", "a-np-wl"]],
      [['kind==view,labels."containerd.io/gc.root"==check-walk'], ["v", "v-wl"]],
      [['kind==committed,labels."containerd.io/gc.root"==check-walk'], ["p", "p-wl"]],
      [["name==p", "name==a-np-wl"], ["p", "a-np-wl"]],
      [["name==a-wl,labels.l"], ["a-wl"]],
      [["parent==p"], ["a", "v"]],
      [['parent!="",labels."containerd.io/gc.root"==check-walk'], ["a", "v", "a-wl", "v-wl"]],
      [["labels.l"], ["p-wl", "a-wl", "v-wl", "a-np-wl"]],
      [["labels.l==2"], ["a-wl", "a-np-wl"]],
    ];
    for (const [filters, want] of table) {
      const got: string[] = [];
      await sn.walk(NS, (i) => void got.push(i.name), { filters });
      assert.deepEqual(got.sort(), want.sort(), filters.join(" | "));
    }
    await rejectsWith(sn.walk(NS, () => {}, { filters: ["name=="] }), "invalid_argument");
  },

  "namespaces do not see each other's snapshots": async ({ sn }) => {
    await sn.prepare("ns1", "k", {});
    await sn.prepare("ns2", "k", {});
    await sn.commit("ns1", "c", { key: "k" });
    await rejectsWith(sn.prepare("ns2", "x", { parent: "c" }), "not_found");
    assert.equal((await sn.stat("ns2", "k")).kind, "active");
  },

  "a file updated in a child layer shows the new content": (ctx) =>
    checkLayers(ctx, [
      async (d) => {
        await Deno.mkdir(`${d}/etc`, { mode: 0o755 });
        await Deno.writeTextFile(`${d}/etc/hosts`, "mydomain 10.0.0.1");
        await Deno.writeTextFile(`${d}/etc/profile`, "PATH=/usr/bin");
      },
      (d) => Deno.writeTextFile(`${d}/etc/hosts`, "mydomain 10.0.0.2"),
    ]),

  "a directory removed in a child layer is gone, also when recreated": (ctx) =>
    checkLayers(ctx, [
      async (d) => {
        await Deno.mkdir(`${d}/lib`, { mode: 0o700 });
        await Deno.writeTextFile(`${d}/lib/hidden`, "x");
        await Deno.mkdir(`${d}/keep`, { mode: 0o755 });
      },
      (d) => Deno.remove(`${d}/lib`, { recursive: true }),
      async (d) => {
        await Deno.mkdir(`${d}/lib`, { mode: 0o755 });
        await Deno.writeTextFile(`${d}/lib/new`, "y");
      },
    ]),

  "files deleted or moved in a child layer disappear from their old place": (ctx) =>
    checkLayers(ctx, [
      async (d) => {
        await Deno.writeTextFile(`${d}/foo`, "foo\n");
        await Deno.writeTextFile(`${d}/foobar`, "foobar\n");
        await Deno.mkdir(`${d}/dir1`, { mode: 0o700 });
        await Deno.writeTextFile(`${d}/dir1/f1`, "Hello");
      },
      async (d) => {
        await Deno.remove(`${d}/foobar`);
        await Deno.mkdir(`${d}/dir3`, { mode: 0o700 });
        await Deno.rename(`${d}/dir1/f1`, `${d}/dir3/f1`);
        await Deno.remove(`${d}/dir1`, { recursive: true });
        await Deno.symlink("../foo", `${d}/dir3/link`);
      },
      () => Promise.resolve(),
    ]),

  "ownership and modes set in a layer are kept by its children": (ctx) =>
    checkLayers(ctx, [
      async (d) => {
        await Deno.mkdir(`${d}/opt`, { mode: 0o755 });
        await Deno.writeTextFile(`${d}/opt/a`, "a");
        await Deno.chown(`${d}/opt/a`, 1000, 1000);
        await Deno.chmod(`${d}/opt/a`, 0o4750);
      },
      async (d) => {
        await Deno.chown(`${d}/opt`, 65534, 65534);
        await Deno.chmod(`${d}/opt`, 0o1777);
      },
    ]),

  "a view is mounted read-only": async (ctx) => {
    await ctx.sn.prepare(NS, "p", {});
    await ctx.sn.commit(NS, "c", { key: "p" });
    for (const [key, parent] of [["v", "c"], ["v-np", ""]] as const) {
      const dir = await ctx.mount(await ctx.sn.view(NS, key, { parent }), key);
      try {
        await assert.rejects(Deno.writeTextFile(`${dir}/testfile`, "x"));
      } finally {
        ctx.unmount(dir);
      }
    }
    // A view over several layers uses overlay without an upper dir: read-only too.
    await ctx.sn.prepare(NS, "p2", { parent: "c" });
    await ctx.sn.commit(NS, "c2", { key: "p2" });
    const dir = await ctx.mount(await ctx.sn.view(NS, "v2", { parent: "c2" }), "v2");
    try {
      await assert.rejects(Deno.writeTextFile(`${dir}/testfile`, "x"));
    } finally {
      ctx.unmount(dir);
    }
  },

  "the root of a new snapshot is mode 0755": async (ctx) => {
    const dir = await ctx.mount(await ctx.sn.prepare(NS, "p", {}), "p");
    try {
      assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o755);
    } finally {
      ctx.unmount(dir);
    }
  },

  "a snapshot's root keeps the owner its parent's root was given (user-namespace remapping)": async (ctx) => {
    // The Go client's WithRemappedSnapshot chowns a prepared tree, commits it, then prepares the
    // container's snapshot on top: the remapped root must own that snapshot's root too.
    const base = await ctx.mount(await ctx.sn.prepare(NS, "base-active", {}), "base");
    await Deno.writeTextFile(`${base}/f`, "x");
    ctx.unmount(base);
    await ctx.sn.commit(NS, "base", { key: "base-active" });
    const remap = await ctx.mount(await ctx.sn.prepare(NS, "remap-active", { parent: "base" }), "remap");
    await Deno.chown(remap, 1000, 2000);
    await Deno.chown(`${remap}/f`, 1000, 2000);
    ctx.unmount(remap);
    await ctx.sn.commit(NS, "remapped", { key: "remap-active" });
    for (
      const [kind, mounts] of [
        ["active", await ctx.sn.prepare(NS, "ctr", { parent: "remapped" })],
        ["view", await ctx.sn.view(NS, "ctr-view", { parent: "remapped" })],
      ] as const
    ) {
      const dir = await ctx.mount(mounts, kind);
      try {
        const st = await Deno.stat(dir);
        assert.deepEqual([st.uid, st.gid], [1000, 2000], `${kind} root`);
      } finally {
        ctx.unmount(dir);
      }
    }
  },

  "usage counts an active snapshot's files and is kept after commit": async (ctx) => {
    const dir = await ctx.mount(await ctx.sn.prepare(NS, "p", {}), "p");
    try {
      await Deno.writeFile(`${dir}/big`, new Uint8Array(1 << 20).fill(7));
    } finally {
      ctx.unmount(dir);
    }
    const active = await ctx.sn.usage(NS, "p");
    assert.ok(active.size >= 1 << 20, `size ${active.size}`);
    assert.ok(active.inodes >= 2);
    await ctx.sn.commit(NS, "c", { key: "p" });
    assert.deepEqual(await ctx.sn.usage(NS, "c"), active);
    await rejectsWith(ctx.sn.usage(NS, "nope"), "not_found");
  },

  "cleanup removes folders no snapshot refers to and keeps the others": async (ctx) => {
    await ctx.sn.prepare(NS, "keep", {});
    await Deno.mkdir(`${ctx.root}/snapshots/9999`);
    await Deno.mkdir(`${ctx.root}/snapshots/rm-12`);
    await ctx.sn.cleanup();
    const left = [...Deno.readDirSync(`${ctx.root}/snapshots`)].map((e) => e.name);
    assert.equal(left.length, 1);
    const dir = await ctx.mount(await ctx.sn.mounts(NS, "keep"), "keep");
    ctx.unmount(dir);
  },

  "a chain of 20 layers shows the top-most version of each file": async (ctx) => {
    let parent = "";
    for (let i = 0; i < 20; i++) {
      const dir = await ctx.mount(await ctx.sn.prepare(NS, `a${i}`, { parent }), `a${i}`);
      try {
        await Deno.writeTextFile(`${dir}/f${i}`, `${i}`);
        await Deno.writeTextFile(`${dir}/top`, `${i}`);
      } finally {
        ctx.unmount(dir);
      }
      await ctx.sn.commit(NS, `c${i}`, { key: `a${i}` });
      parent = `c${i}`;
    }
    const view = await ctx.mount(await ctx.sn.view(NS, "v", { parent }), "v");
    try {
      assert.equal(await Deno.readTextFile(`${view}/top`), "19");
      assert.equal(await Deno.readTextFile(`${view}/f0`), "0");
      assert.equal([...Deno.readDirSync(view)].length, 21);
    } finally {
      ctx.unmount(view);
    }
  },
};

export interface SuiteOptions {
  /** Where each case's temp folder is made (e.g. on a btrfs made by the test); the system's by default. */
  readonly dir?: () => string;
  /** Removes a case's root before its folder is deleted (btrfs: read-only subvolumes resist rm -r). */
  readonly removeRoot?: (root: string) => Promise<void>;
  /** Deno.test's ignore. */
  readonly ignore?: boolean;
}

/** Registers every conformance case as a Deno test named "<name> snapshotter: <case>". */
export function snapshotterSuite(
  name: string,
  factory: SnapshotterFactory,
  options: SuiteOptions = {},
): void {
  for (const [title, fn] of Object.entries(cases)) {
    Deno.test({ name: `${name} snapshotter: ${title}`, ignore: options.ignore }, async () => {
      const tmp = await Deno.makeTempDir({ dir: options.dir?.(), prefix: `berth-snap-${name}-` });
      const db = new MetadataDB(`${tmp}/meta.db`);
      const mounted = new Set<string>();
      let sn: Snapshotter | undefined;
      try {
        sn = await factory(`${tmp}/root`, db);
        await Deno.mkdir(`${tmp}/work`);
        const ctx: Ctx = {
          sn,
          work: `${tmp}/work`,
          root: `${tmp}/root`,
          async mount(mounts, dirName) {
            const dir = `${tmp}/work/${dirName}`;
            await Deno.mkdir(dir, { recursive: true });
            mountAll(mounts, dir);
            mounted.add(dir);
            return dir;
          },
          unmount(dir) {
            try {
              unmountAll(dir);
            } catch (err) {
              // A container started by another test at that moment can hold the mount for a while (its
              // runc init copies the host's mounts): what the case checked is done, so detach it.
              if (!(err instanceof SyscallError && err.errno === EBUSY)) throw err;
              unmountAll(dir, { flags: MNT_DETACH });
            }
            mounted.delete(dir);
          },
        };
        await fn(ctx);
      } finally {
        for (const dir of mounted) {
          try {
            unmountAll(dir, { flags: MNT_DETACH });
          } catch { /* keep cleaning */ }
        }
        await sn?.close();
        db.close();
        await options.removeRoot?.(`${tmp}/root`);
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
}
