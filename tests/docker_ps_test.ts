/**
 * Docker's read verbs (ps, inspect, port, top, stats) and the small state verbs (rename, pause,
 * unpause, wait) over containers made by Debian's real `ctr`: some with nerdctl's labels, as `berth run`
 * makes them, one plain, one never started, one exited, one whose task `stop` deleted (its exit recorded
 * in labels). A real daemon, Berth's shim and runc.
 */
import assert from "node:assert/strict";
import { dockerPaths } from "../src/docker/paths.ts";
import { mainTs } from "./helpers/daemon.ts";
import { type Env, setup, teardown } from "./helpers/tasks.ts";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(env: Env, dataRoot: string) {
  return async (args: string[]): Promise<Result> => {
    const out = await new Deno.Command(Deno.execPath(), {
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
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PORTS = JSON.stringify([{ HostPort: 18080, ContainerPort: 80, Protocol: "tcp", HostIP: "0.0.0.0" }]);
/** How docker words a few seconds. */
const SECONDS = "(?:Less than a second|1 second|\\d+ seconds)";
const lines = (s: string) => s.split("\n").filter((l) => l !== "");

Deno.test({
  name:
    "ps, inspect, port, top, stats, rename, pause, unpause and wait show ctr's containers as docker would",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth");
    const dataRoot = await Deno.makeTempDir({ prefix: "berth-docker-ps-" });
    const b = cli(env, dataRoot);
    const ok = async (args: string[]) => {
      const r = await b(args);
      assert.equal(r.code, 0, `berth ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const ctrOk = async (args: string[]) => {
      const r = await env.ctr(args);
      assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const taskStatus = async (id: string) =>
      new RegExp(`^${id}\\s+\\d+\\s+(\\w+)$`, "m").exec(await ctrOk(["task", "ls"]))?.[1];
    try {
      const image = env.image;
      await ctrOk([
        "run",
        "-d",
        "--label",
        "nerdctl/name=web",
        "--label",
        `nerdctl/ports=${PORTS}`,
        image,
        "webid",
        "sleep",
        "1000",
      ]);
      await ctrOk(["run", "-d", image, "plain1", "sleep", "1000"]);
      await ctrOk(["container", "create", image, "created1", "true"]);
      await ctrOk(["run", "-d", image, "exited1", "sh", "-c", "exit 3"]);
      await ctrOk([
        "container",
        "create",
        "--label",
        "berth/exit-code=143",
        "--label",
        `berth/finished-at=${new Date().toISOString()}`,
        image,
        "stopped1",
        "true",
      ]);
      await waitFor("exited1 to stop", async () => (await taskStatus("exited1")) === "STOPPED");
      // The networking hook's record of web's address on the default network.
      const store = dockerPaths({ address: env.daemon.address, namespace: env.ns, dataRoot }).dataStore;
      const metaDir = `${store}/etchosts/${env.ns}/webid`;
      await Deno.mkdir(metaDir, { recursive: true });
      await Deno.writeTextFile(
        `${metaDir}/meta.json`,
        JSON.stringify({
          id: "webid",
          hostname: "webid",
          name: "web",
          aliases: [],
          networks: { bridge: "10.4.0.7" },
        }),
      );

      await t.step("ps lists the running containers in docker's columns, names or ids as names", async () => {
        const out = lines(await ok(["ps"]));
        assert.match(out[0]!, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
        assert.equal(out.length, 3, out.join("\n"));
        const web = out.find((l) => l.startsWith("webid "));
        assert.ok(web, out.join("\n"));
        assert.match(
          web,
          new RegExp(
            `"sleep 1000"\\s+${SECONDS} ago\\s+Up ${SECONDS}\\s+0\\.0\\.0\\.0:18080->80/tcp\\s+web$`,
          ),
        );
        assert.ok(web.includes(image));
        assert.match(out.find((l) => l.startsWith("plain1 "))!, /Up .*\s+plain1$/);
        assert.deepEqual(lines(await ok(["ps", "-q"])).sort(), ["plain1", "webid"]);
      });

      await t.step(
        "ps -a adds the created and exited ones, a deleted task's exit from its labels",
        async () => {
          const out = await ok(["ps", "-a"]);
          assert.match(out, /^created1\s.*"true"\s+.*\s+Created\s+created1$/m);
          assert.match(
            out,
            new RegExp(`^exited1\\s.*"sh -c exit 3"\\s+.*\\s+Exited \\(3\\) ${SECONDS} ago\\s+exited1$`, "m"),
          );
          assert.match(out, /^stopped1\s.*Exited \(143\) .* ago\s+stopped1$/m);
          assert.equal(lines(out).length, 6);
        },
      );

      await t.step("ps --format json, filters, and templates", async () => {
        const rows = lines(await ok(["ps", "-a", "--format", "json"])).map((l) => JSON.parse(l));
        const web = rows.find((r) => r.Names === "web");
        assert.equal(web.ID, "webid");
        assert.equal(web.Image, image);
        assert.equal(web.Command, '"sleep 1000"');
        assert.equal(web.State, "running");
        assert.match(web.Status, /^Up /);
        assert.equal(web.Ports, "0.0.0.0:18080->80/tcp");
        assert.match(web.CreatedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$/);
        assert.ok(web.Labels.split(",").includes("nerdctl/name=web"), web.Labels);
        assert.equal(rows.find((r) => r.Names === "created1").State, "created");
        assert.equal(rows.find((r) => r.Names === "exited1").State, "exited");

        assert.equal(
          await ok(["ps", "-a", "-f", "label=nerdctl/name=web", "--format", "{{.Names}}"]),
          "web\n",
        );
        assert.equal(await ok(["ps", "-f", "name=pla", "-q"]), "plain1\n");
        assert.deepEqual(lines(await ok(["ps", "-f", "status=exited", "-q"])).sort(), [
          "exited1",
          "stopped1",
        ]);
        const bad = await b(["ps", "-f", "colour=red"]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /Invalid filter "colour=red"/);
      });

      await t.step("inspect gives docker's document, by name or id, and fails on a missing one", async () => {
        const [doc, plain] = JSON.parse(await ok(["inspect", "web", "plain1"]));
        assert.equal(doc.Id, "webid");
        assert.equal(doc.Name, "/web");
        assert.match(doc.Created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
        assert.equal(doc.Path, "sleep");
        assert.deepEqual(doc.Args, ["1000"]);
        assert.equal(doc.State.Status, "running");
        assert.equal(doc.State.Running, true);
        assert.equal(doc.State.Paused, false);
        assert.equal(doc.State.Restarting, false);
        assert.ok(doc.State.Pid > 0);
        const startedAgo = Date.now() - Date.parse(doc.State.StartedAt);
        assert.ok(startedAgo >= -2000 && startedAgo < 120_000, doc.State.StartedAt);
        assert.equal(doc.State.FinishedAt, "0001-01-01T00:00:00Z");
        assert.equal(doc.Image, image);
        assert.deepEqual(doc.Config.Cmd, ["sleep", "1000"]);
        assert.equal(doc.Config.Labels["nerdctl/name"], "web");
        assert.equal(doc.Config.Tty, false);
        assert.ok(doc.Config.Env.some((e: string) => e.startsWith("PATH=")));
        assert.deepEqual(doc.HostConfig.RestartPolicy, { Name: "no", MaximumRetryCount: 0 });
        assert.deepEqual(doc.HostConfig.PortBindings, {
          "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "18080" }],
        });
        assert.deepEqual(doc.NetworkSettings.Ports, doc.HostConfig.PortBindings);
        assert.equal(doc.NetworkSettings.IPAddress, "10.4.0.7");
        assert.equal(doc.NetworkSettings.Networks.bridge.IPAddress, "10.4.0.7");
        assert.equal(doc.HostsPath, "", "no hosts file yet");
        assert.deepEqual(doc.Mounts, []);
        assert.equal(plain.Name, "/plain1");
        assert.equal(plain.HostConfig.NetworkMode, "none");

        assert.equal(
          await ok(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "exited1"]),
          "exited 3\n",
        );
        const [stopped] = JSON.parse(await ok(["inspect", "stopped1"]));
        assert.equal(stopped.State.Status, "exited");
        assert.equal(stopped.State.ExitCode, 143);
        assert.notEqual(stopped.State.FinishedAt, "0001-01-01T00:00:00Z");

        const missing = await b(["inspect", "web", "nosuch"]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /No such container: nosuch/);
        assert.equal(JSON.parse(missing.stdout).length, 1);
      });

      await t.step("port lists the published ports, or one port's host addresses", async () => {
        assert.equal(await ok(["port", "web"]), "80/tcp -> 0.0.0.0:18080\n");
        assert.equal(await ok(["port", "webid", "80/tcp"]), "0.0.0.0:18080\n");
        assert.equal(await ok(["port", "plain1"]), "");
        const none = await b(["port", "web", "81"]);
        assert.equal(none.code, 1);
        assert.match(none.stderr, /No public port "81\/tcp" published for web/);
      });

      await t.step("top shows the container's processes in ps -ef's columns", async () => {
        const out = lines(await ok(["top", "web"]));
        assert.match(out[0]!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
        assert.equal(out.length, 2, out.join("\n"));
        assert.match(out[1]!, /^root\s+\d+\s+\d+\s+\d+\s+\d\d:\d\d\s+\?\s+00:00:00\s+sleep 1000$/);
        const stopped = await b(["top", "exited1"]);
        assert.equal(stopped.code, 1);
        assert.match(stopped.stderr, /Container exited1 is not running/);
      });

      await t.step("stats --no-stream samples the running containers once", async () => {
        const out = lines(await ok(["stats", "--no-stream"]));
        assert.match(
          out[0]!,
          /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/,
        );
        assert.equal(out.length, 3, out.join("\n"));
        assert.match(
          out.find((l) => l.startsWith("webid "))!,
          /^webid\s+web\s+\d+\.\d\d%\s+[\d.]+[KMG]?i?B \/ [\d.]+[KMGT]iB\s+\d+\.\d\d%\s+0B \/ 0B\s+\S+ \/ \S+\s+1$/,
        );
        const json = lines(await ok(["stats", "--no-stream", "--format", "json", "plain1", "exited1"])).map((
          l,
        ) => JSON.parse(l));
        assert.deepEqual(json.map((r) => r.Name), ["plain1", "exited1"]);
        assert.equal(json[0].PIDs, "1");
        assert.equal(json[1].PIDs, "0");
        assert.equal(json[1].MemUsage, "0B / 0B");
      });

      await t.step("stats without --no-stream redraws every second until interrupted", async () => {
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
            "stats",
            "web",
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const output = child.output();
        try {
          await new Promise((r) => setTimeout(r, 4500));
        } finally {
          try {
            child.kill("SIGINT");
          } catch { /* exited */ }
        }
        const text = new TextDecoder().decode((await output).stdout);
        const frames = text.split("\x1b[2J\x1b[H").filter((f) => f !== "");
        assert.ok(frames.length >= 2, JSON.stringify(text));
        for (const f of frames) assert.match(f, /^CONTAINER ID\s.*\nwebid\s+web\s/);
      });

      await t.step(
        "rename changes the name label and the hosts store's name, refusing bad or taken names",
        async () => {
          assert.equal(await ok(["rename", "web", "web2"]), "");
          assert.equal(await ok(["ps", "-f", "id=webid", "--format", "{{.Names}}"]), "web2\n");
          const info = JSON.parse(await ctrOk(["c", "info", "webid"]));
          assert.equal(info.Labels["nerdctl/name"], "web2");
          assert.equal(info.Labels["nerdctl/ports"], PORTS, "the other labels stay");
          assert.equal(JSON.parse(await Deno.readTextFile(`${metaDir}/meta.json`)).name, "web2");
          assert.match(await Deno.readTextFile(`${metaDir}/hosts`), /^10\.4\.0\.7\s+webid web2$/m);

          const taken = await b(["rename", "plain1", "web2"]);
          assert.equal(taken.code, 1);
          assert.match(taken.stderr, /"web2" is already in use by container webid/);
          const invalid = await b(["rename", "plain1", "no/slash"]);
          assert.equal(invalid.code, 1);
          assert.match(invalid.stderr, /Invalid container name "no\/slash"/);
        },
      );

      await t.step("pause and unpause several containers, going on past one that fails", async () => {
        const paused = await b(["pause", "web2", "nosuch", "plain1"]);
        assert.equal(paused.code, 1);
        assert.equal(paused.stdout, "web2\nplain1\n");
        assert.match(paused.stderr, /nosuch: No such container: nosuch/);
        assert.equal(await taskStatus("webid"), "PAUSED");
        assert.match(await ok(["ps", "-f", "name=web2"]), /Up .* \(Paused\)/);
        const [doc] = JSON.parse(await ok(["inspect", "web2"]));
        assert.equal(doc.State.Status, "paused");
        assert.equal(doc.State.Paused, true);
        assert.deepEqual(lines(await ok(["ps", "-q", "-f", "status=paused"])).sort(), ["plain1", "webid"]);
        const again = await b(["pause", "plain1"]);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /already paused/);

        assert.equal(await ok(["unpause", "web2", "plain1"]), "web2\nplain1\n");
        assert.equal(await taskStatus("webid"), "RUNNING");
        const notPaused = await b(["unpause", "plain1"]);
        assert.equal(notPaused.code, 1);
        assert.match(notPaused.stderr, /not paused/);
      });

      await t.step(
        "wait prints exit codes: a running one's once killed, an exited one's, a recorded one's",
        async () => {
          const waiting = b(["wait", "plain1"]);
          await new Promise((r) => setTimeout(r, 1500));
          await ctrOk(["task", "kill", "-s", "SIGKILL", "plain1"]);
          const waited = await waiting;
          assert.equal(waited.code, 0, waited.stderr);
          assert.equal(waited.stdout, "137\n");
          assert.equal(await ok(["wait", "exited1", "stopped1"]), "3\n143\n");
          const never = await b(["wait", "created1"]);
          assert.equal(never.code, 1);
          assert.match(never.stderr, /created1 has no task to wait for: it was never started/);
        },
      );
    } finally {
      for (const id of ["webid", "plain1"]) await env.ctr(["task", "resume", id]).catch(() => {});
      await teardown(env);
      await Deno.remove(dataRoot, { recursive: true }).catch(() => {});
    }
    const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
      .filter((l) => l.split(" ")[4]?.startsWith(env.daemon.dir));
    assert.deepEqual(mounts, [], "no mount is left under the daemon's folders");
    for (const ctl of ["", "memory/", "pids/", "freezer/"]) {
      assert.ok(
        !(await Deno.stat(`/sys/fs/cgroup/${ctl}${env.ns}`).then(() => true, () => false)),
        `cgroup ${ctl}${env.ns}`,
      );
    }
  },
});
