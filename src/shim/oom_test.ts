import assert from "node:assert/strict";
import { cgroupOf, OomWatcher, parseOomKills } from "./oom.ts";

/** memory.events of a cgroup v2 memory controller (kernel 5.x+ layout) after one OOM kill. */
const MEMORY_EVENTS = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";

Deno.test("parseOomKills() reads memory.events' oom_kill counter", () => {
  assert.equal(parseOomKills(MEMORY_EVENTS), 1);
  assert.equal(parseOomKills("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"), 0);
  assert.equal(parseOomKills("oom_group_kill 4\n"), 0, "oom_group_kill is another counter");
  assert.equal(parseOomKills(""), 0);
});

Deno.test("OomWatcher(v2) reports a rise of oom_kill once, at check() without waiting for its timer", async () => {
  const path = cgroupOf(Deno.pid, "");
  assert.ok(path !== undefined, "/proc/self/cgroup has a cgroup v2 line");
  // A folder laid out like cgroupfs: this host's cgroup2 mount has no memory controller.
  const root = await Deno.makeTempDir({ prefix: "berth-oom-" });
  const ooms: string[] = [];
  const w = new OomWatcher("v2", (id) => ooms.push(id), { root });
  try {
    await Deno.mkdir(`${root}${path}`, { recursive: true });
    const file = `${root}${path}/memory.events`;
    await Deno.writeTextFile(file, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n");
    w.add("c1", Deno.pid);
    w.check("c1");
    assert.deepEqual(ooms, [], "kills from before add() are not this container's");
    await Deno.writeTextFile(file, "low 0\nhigh 0\nmax 5\noom 3\noom_kill 3\n");
    w.check("c1");
    w.check("c1");
    assert.deepEqual(ooms, ["c1"]);
    await Deno.remove(file);
    w.check("c1");
    assert.deepEqual(ooms, ["c1"], "a removed cgroup is no OOM");
    w.remove("c1");
    w.check("c1");
  } finally {
    w.close();
    await Deno.remove(root, { recursive: true });
  }
});

/** The cgroup2 mount: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones. */
function unifiedRoot(): string | undefined {
  for (const dir of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    try {
      Deno.statSync(`${dir}/cgroup.controllers`);
      return dir;
    } catch { /* not cgroup2 */ }
  }
  return undefined;
}

const unified = unifiedRoot();
const hasV2Memory = (() => {
  if (!unified) return false;
  try {
    return Deno.readTextFileSync(`${unified}/cgroup.subtree_control`).split(/\s+/).includes("memory");
  } catch {
    return false;
  }
})();

Deno.test({
  name: "OomWatcher(v2) sees a real OOM kill in a cgroup v2 memory controller",
  // Here the cgroup2 mount has no memory controller (memory is a v1 hierarchy): nothing to watch.
  ignore: !hasV2Memory,
  async fn() {
    const cg = `${unified}/berth-oom-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(cg);
    const ooms: string[] = [];
    const w = new OomWatcher("v2", (id) => ooms.push(id), { root: unified });
    try {
      await Deno.writeTextFile(`${cg}/memory.max`, String(8 << 20));
      await Deno.writeTextFile(`${cg}/memory.swap.max`, "0").catch(() => {});
      // The shell moves itself into the cgroup, waits to be watched, then tail buffers 64 MiB.
      const child = new Deno.Command("/bin/busybox", {
        args: ["sh", "-c", `echo $$ > ${cg}/cgroup.procs; read go; head -c 67108864 /dev/zero | tail -c 1`],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      for (let i = 0; i < 50 && !Deno.readTextFileSync(`${cg}/cgroup.procs`).trim(); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      w.add("c1", child.pid);
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      await child.status;
      w.check("c1");
      assert.deepEqual(ooms, ["c1"]);
    } finally {
      w.close();
      await Deno.remove(cg).catch(() => {});
    }
  },
});
