/**
 * Named volumes and `berth cp` against a real daemon, Berth's shim, runc and Debian's `ctr`: a volume
 * outlives the container that wrote it; `volume rm` refuses a volume a container is labelled with; `cp`
 * copies into and out of a running container (through /proc/<pid>/root) and a stopped one (its snapshot
 * mounted for the copy), and a container's symlinks never take it to the host.
 */
import assert from "node:assert/strict";
import { mainTs } from "./helpers/daemon.ts";
import { type Env, setup, teardown } from "./helpers/tasks.ts";

interface Out {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

async function cli(env: Env, dataRoot: string, args: string[], stdin?: Uint8Array): Promise<Out> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      mainTs,
      "--address",
      env.daemon.address,
      "--namespace",
      env.ns,
      "--data-root",
      dataRoot,
      ...args,
    ],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    bytes: out.stdout,
  };
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Mounts the cp of a stopped container made and must have taken away. */
async function cpMounts(): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").map((l) => l.split(" ")[4] ?? "").filter((t) => t.includes("/berth-cp-"));
}

Deno.test({
  name: "volumes persist across containers, are kept while used, and berth cp stays inside containers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth");
    const dataRoot = await Deno.makeTempDir({ prefix: "berth-voltest-" });
    const host = await Deno.makeTempDir({ prefix: "berth-cphost-" });
    const b = (args: string[], stdin?: Uint8Array) => cli(env, dataRoot, args, stdin);
    try {
      let mountpoint = "";

      await t.step("a volume written by one container is there for the next", async () => {
        assert.equal(ok(await b(["volume", "create", "--label", "app=test", "vol1"]), "create"), "vol1\n");
        const [info] = JSON.parse(ok(await b(["volume", "inspect", "vol1"]), "inspect"));
        assert.equal(info.Name, "vol1");
        assert.deepEqual(info.Labels, { app: "test" });
        mountpoint = info.Mountpoint;
        const mount = `type=bind,src=${mountpoint},dst=/data,options=rbind:rw`;
        ok(
          await env.ctr([
            "run",
            "--rm",
            "--mount",
            mount,
            env.image,
            "w1",
            "sh",
            "-c",
            "echo persisted > /data/f",
          ]),
          "writer",
        );
        assert.equal(await Deno.readTextFile(`${mountpoint}/f`), "persisted\n");
        const read = await env.ctr(["run", "--rm", "--mount", mount, env.image, "r1", "cat", "/data/f"]);
        assert.equal(ok(read, "reader"), "persisted\n");
      });

      await t.step("volume rm refuses a volume a container is labelled with; ls filters it", async () => {
        const label = JSON.stringify([
          { Type: "volume", Name: "vol1", Source: mountpoint, Destination: "/data", RW: true },
        ]);
        ok(
          await env.ctr(["c", "create", "--label", `nerdctl/mounts=${label}`, env.image, "holder"]),
          "holder",
        );
        const rm = await b(["volume", "rm", "vol1"]);
        assert.notEqual(rm.code, 0);
        assert.match(rm.stderr, /Cannot remove volume "vol1": volume is in use: holder/);
        ok(await b(["volume", "create", "spare"]), "create spare");
        assert.equal(ok(await b(["volume", "ls", "-q", "--filter", "dangling=true"]), "ls"), "spare\n");
        assert.equal(ok(await b(["volume", "ls", "-q", "--filter", "label=app=test"]), "ls"), "vol1\n");
        ok(await env.ctr(["c", "rm", "holder"]), "rm holder");
        assert.equal(ok(await b(["volume", "rm", "vol1"]), "rm"), "vol1\n");
        assert.ok(!(await Deno.stat(mountpoint).then(() => true, () => false)));
        assert.equal(ok(await b(["volume", "prune", "-f", "-a"]), "prune"), "Deleted Volumes:\nspare\n");
        assert.equal(ok(await b(["volume", "ls", "-q"]), "ls"), "");
      });

      // A container whose /box holds a file and links aimed at the host: its root, and `host` itself.
      await Deno.mkdir(`${host}/victim`);
      await Deno.writeTextFile(`${host}/victim/secret`, "host secret");
      const script = [
        "mkdir /box",
        "echo inside > /box/file",
        "ln -s /../../../.. /box/up",
        `ln -s ${host}/victim /box/abs`,
        `ln -s ${host}/victim/secret /box/secret`,
        "touch /ready",
        "exec sleep 1000",
      ].join("; ");
      const exec = (args: string[]) =>
        env.ctr(["t", "exec", "--exec-id", `e${crypto.randomUUID().slice(0, 6)}`, "c1", ...args]);

      await t.step("cp into and out of a running container", async () => {
        ok(await env.ctr(["run", "-d", env.image, "c1", "sh", "-c", script]), "run c1");
        for (let i = 0; i < 100 && (await exec(["ls", "/ready"])).code !== 0; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        await Deno.writeTextFile(`${host}/in.txt`, "from host\n");
        await Deno.mkdir(`${host}/dir/sub`, { recursive: true });
        await Deno.writeTextFile(`${host}/dir/sub/g`, "deep\n");
        ok(await b(["cp", `${host}/in.txt`, "c1:/box/"]), "cp file in");
        assert.equal(ok(await exec(["cat", "/box/in.txt"]), "cat"), "from host\n");
        assert.match(ok(await exec(["ls", "-ln", "/box/in.txt"]), "ls"), /^\S+\s+\d+\s+0\s+0\s/);
        ok(await b(["cp", `${host}/dir`, "c1:/box/copied"]), "cp dir in");
        assert.equal(ok(await exec(["cat", "/box/copied/sub/g"]), "cat"), "deep\n");
        ok(await b(["cp", "c1:/box/file", `${host}/out.txt`]), "cp file out");
        assert.equal(await Deno.readTextFile(`${host}/out.txt`), "inside\n");
        ok(await b(["cp", "c1:/box", `${host}/boxcopy`]), "cp dir out");
        assert.equal(await Deno.readTextFile(`${host}/boxcopy/copied/sub/g`), "deep\n");
        assert.equal(await Deno.readLink(`${host}/boxcopy/up`), "/../../../..");
      });

      await t.step("a running container's symlinks keep cp inside it", async () => {
        const name = `pwned-${crypto.randomUUID().slice(0, 8)}`;
        // `/box/up` climbs above the root: inside the container that is `/`, not the host's `/`.
        ok(await b(["cp", `${host}/in.txt`, `c1:/box/up/${name}`]), "cp through up");
        assert.equal(ok(await exec(["cat", `/${name}`]), "cat"), "from host\n");
        assert.ok(!(await Deno.stat(`/${name}`).then(() => true, () => false)));
        // `/box/abs` names a host folder: inside the container there is none.
        const abs = await b(["cp", `${host}/in.txt`, "c1:/box/abs/"]);
        assert.notEqual(abs.code, 0);
        const out = await b(["cp", "-L", "c1:/box/secret", `${host}/stolen`]);
        assert.notEqual(out.code, 0);
        assert.match(out.stderr, /Could not find/);
        assert.deepEqual([...Deno.readDirSync(`${host}/victim`)].map((e) => e.name), ["secret"]);
        assert.equal(await Deno.readTextFile(`${host}/victim/secret`), "host secret");
      });

      await t.step("cp - streams a tar in and out", async () => {
        const tar = await b(["cp", "c1:/box/copied", "-"]);
        assert.equal(tar.code, 0, tar.stderr);
        const names = new TextDecoder().decode(tar.bytes).match(/copied\/sub\/g/);
        assert.ok(names, "the tar holds copied/sub/g");
        ok(await exec(["mkdir", "/fromtar"]), "mkdir");
        ok(await b(["cp", "-", "c1:/fromtar"], tar.bytes), "cp - in");
        assert.equal(ok(await exec(["cat", "/fromtar/copied/sub/g"]), "cat"), "deep\n");
      });

      await t.step("cp into and out of a stopped container through its snapshot", async () => {
        ok(await env.ctr(["t", "kill", "-s", "SIGKILL", "c1"]), "kill");
        for (let i = 0; i < 100; i++) {
          if ((await env.ctr(["t", "rm", "c1"])).code === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await Deno.writeTextFile(`${host}/late.txt`, "while stopped\n");
        ok(await b(["cp", `${host}/late.txt`, "c1:/box/"]), "cp in stopped");
        ok(await b(["cp", "c1:/box/late.txt", `${host}/late-back.txt`]), "cp out stopped");
        assert.equal(await Deno.readTextFile(`${host}/late-back.txt`), "while stopped\n");
        ok(await b(["cp", "c1:/box/in.txt", `${host}/in-back.txt`]), "cp out stopped");
        assert.equal(await Deno.readTextFile(`${host}/in-back.txt`), "from host\n");
        const esc = await b(["cp", "-L", "c1:/box/secret", `${host}/stolen2`]);
        assert.notEqual(esc.code, 0);
        assert.deepEqual(await cpMounts(), []);
        // What cp wrote is in the container's rootfs: a new task sees it.
        ok(await env.ctr(["t", "start", "-d", "c1"]), "restart");
        assert.equal(ok(await exec(["cat", "/box/late.txt"]), "cat"), "while stopped\n");
      });
    } finally {
      await teardown(env);
      for (const m of await cpMounts()) {
        await new Deno.Command("umount", { args: ["-l", m] }).output().catch(() => {});
      }
      await Deno.remove(dataRoot, { recursive: true }).catch(() => {});
      await Deno.remove(host, { recursive: true }).catch(() => {});
    }
  },
});
