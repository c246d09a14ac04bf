/**
 * The Docker-style workflows end to end (issue 13's acceptance): `berth run -d -p`, logs that outlive the
 * client and the daemon, restart policies, named volumes, networks and bad input, against a real daemon,
 * runc, a real registry, Debian's CNI plugins and the host's iptables. Every container, network, rule and
 * folder the test makes is removed again, also when a step fails.
 */
import assert from "node:assert/strict";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { berth, berthCommand, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { removeNamespaceCgroups } from "./helpers/tasks.ts";
import { removeBridgeIsolationRules } from "../src/core/dockernet/attach.ts";
import {
  bridgePorts,
  deleteLink,
  iptablesSave,
  linkExists,
  restoreIptables,
  rulesMatching,
} from "./helpers/cni_host.ts";

interface Env {
  daemon: TestDaemon;
  readonly ns: string;
  readonly dataRoot: string;
  readonly confDir: string;
  readonly image: string;
}

type Result = { code: number; stdout: string; stderr: string };

function globalFlags(env: Env): string[] {
  return [
    "--address",
    env.daemon.address,
    "--namespace",
    env.ns,
    "--data-root",
    env.dataRoot,
    "--cni-netconfpath",
    env.confDir,
  ];
}

async function b(env: Env, args: string[]): Promise<Result> {
  return await berth([...globalFlags(env), ...args]);
}

/** Runs the CLI and fails the test with its output unless it succeeds. */
async function must(env: Env, args: string[]): Promise<string> {
  const r = await b(env, args);
  assert.equal(r.code, 0, `berth ${args.join(" ")} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function pushedImage(registry: TestRegistry): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
  try {
    const pushed = await pushFixtures(registry, await buildFixtureImages(dir), { names: ["single"] });
    return pushed.single.reference;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A TCP port nothing listens on now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The host's first non-loopback IPv4 address. */
function hostAddress(): string {
  const found = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.") && !/^(br-|berth|cni|veth|docker|virbr)/.test(i.name)
  );
  if (!found) throw new Error("the host has no non-loopback IPv4 address");
  return found.address;
}

const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);

/** containerd's own runc shim, where Debian's containerd package installs it. */
const FOREIGN_SHIM = "/usr/bin/containerd-shim-runc-v2";

/** Every container of the test's namespace, removed with force (and their anonymous volumes). */
async function removeAll(env: Env): Promise<void> {
  const ids = (await b(env, ["ctr", "c", "ls", "-q"])).stdout.split("\n").map((l) => l.trim()).filter(
    Boolean,
  );
  if (ids.length) await b(env, ["rm", "-f", "-v", ...ids]);
}

Deno.test({
  name: "Docker-style run, logs, stop/start, volumes and bad input on a real daemon",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const registry = await startRegistry();
    const iptablesBefore = await iptablesSave();
    const hadBridge = await linkExists("berth0");
    const scratch = await Deno.makeTempDir({ prefix: "berth-docker-" });
    let env: Env | undefined;
    try {
      const image = await pushedImage(registry);
      await Deno.mkdir(`${scratch}/daemon`);
      const daemon = await startDaemon({ dir: `${scratch}/daemon` });
      env = {
        daemon,
        ns: `dk${crypto.randomUUID().slice(0, 8)}`,
        dataRoot: `${scratch}/data`,
        confDir: `${scratch}/net.d`,
        image,
      };
      const e = env;
      // The image comes from a plain-HTTP registry: pull it once, as a user would with their registry.
      await must(e, ["ctr", "images", "pull", "--plain-http", image]);

      await t.step("run -d logs to a json-file that logs reads, with --tail and -t", async () => {
        const id = (await must(e, [
          "run",
          "-d",
          "--name",
          "ticker",
          "--network",
          "none",
          e.image,
          "sh",
          "-c",
          "echo out one; echo err one >&2; sleep 0.3; echo out two; sleep 1000",
        ])).trim();
        assert.match(id, /^[0-9a-f]{64}$/);
        await waitFor("three log lines", async () => (await b(e, ["logs", "ticker"])).stdout.includes("two"));
        const all = await b(e, ["logs", "ticker"]);
        assert.equal(all.stdout, "out one\nout two\n");
        assert.equal(all.stderr, "err one\n");
        const tail = await b(e, ["logs", "--tail", "1", "-t", id.slice(0, 12)]);
        assert.match(tail.stdout + tail.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out two\n$/);
        const path = `${e.dataRoot}`;
        assert.ok(await exists(path));
        await must(e, ["rm", "-f", "ticker"]);
        assert.equal((await b(e, ["logs", "ticker"])).code, 1);
      });

      await t.step("logs -f follows a detached container across a daemon restart", async () => {
        await must(e, [
          "run",
          "-d",
          "--name",
          "counter",
          "--network",
          "none",
          e.image,
          "sh",
          "-c",
          "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ]);
        const follower = berthCommand([...globalFlags(e), "logs", "-f", "counter"]).spawn();
        const dec = new TextDecoder();
        let seen = "";
        const reading = (async () => {
          for await (const chunk of follower.stdout) seen += dec.decode(chunk, { stream: true });
        })();
        follower.stderr.cancel().catch(() => {});
        try {
          await waitFor("ticks before the restart", () => Promise.resolve(seen.includes("tick 3\n")));
          await e.daemon.stop("SIGKILL");
          const atKill = Number([...seen.matchAll(/tick (\d+)/g)].pop()?.[1] ?? 0);
          // The shim keeps writing while no daemon runs, and the follower keeps reading.
          await waitFor(
            "ticks while the daemon is down",
            () => Promise.resolve(seen.includes(`tick ${atKill + 5}\n`)),
          );
          e.daemon = await startDaemon({ dir: `${scratch}/daemon` });
          await waitFor(
            "ticks after the restart",
            () => Promise.resolve(seen.includes(`tick ${atKill + 10}\n`)),
          );
          await must(e, ["stop", "-t", "1", "counter"]);
          const status = await follower.status;
          assert.equal(status.code, 0, "logs -f ends when the container stops");
        } finally {
          try {
            follower.kill();
          } catch { /* ended */ }
          await reading;
        }
        const ticks = [...seen.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
        assert.deepEqual(ticks, ticks.map((_, i) => i), "every tick once, in order");
        await must(e, ["rm", "counter"]);
      });

      await t.step(
        "stop, start and restart keep the container; ps -a style exit status is kept",
        async () => {
          await must(e, ["run", "-d", "--name", "cycle", "--network", "none", e.image, "sleep", "1000"]);
          await must(e, ["stop", "-t", "1", "cycle"]);
          const id = (await must(e, ["ctr", "c", "ls", "-q"])).trim();
          const info = JSON.parse(await must(e, ["ctr", "c", "info", id]));
          // sleep as PID 1 has no handler for SIGTERM, so the timeout's SIGKILL ends it, as with docker.
          assert.equal(info.Labels["berth/exit-code"], "137");
          await must(e, ["start", "cycle"]);
          await must(e, ["restart", "-t", "1", "cycle"]);
          const rm = await b(e, ["rm", "cycle"]);
          assert.equal(rm.code, 1);
          assert.match(rm.stderr, /cannot remove a running container cycle.*rm -f/);
          await must(e, ["rm", "-f", "cycle"]);
        },
      );

      await t.step("a named volume keeps its data across rm and a new run", async () => {
        await must(e, [
          "run",
          "--rm",
          "--network",
          "none",
          "-v",
          "keep:/data",
          e.image,
          "sh",
          "-c",
          "echo kept > /data/f",
        ]);
        const out = await must(e, [
          "run",
          "--rm",
          "--network",
          "none",
          "-v",
          "keep:/data:ro",
          e.image,
          "cat",
          "/data/f",
        ]);
        assert.equal(out, "kept\n");
        // A new volume mounted over a path of the image starts with the image's content there (copy-up).
        const none = ["run", "--rm", "--network", "none"];
        await must(e, [...none, "-v", "etcvol:/etc", e.image, "true"]);
        assert.match(await must(e, [...none, "-v", "etcvol:/x", e.image, "cat", "/x/passwd"]), /^root:/m);
        const ro = await b(e, [
          "run",
          "--rm",
          "--network",
          "none",
          "-v",
          "keep:/data:ro",
          e.image,
          "touch",
          "/data/g",
        ]);
        assert.notEqual(ro.code, 0, ":ro mounts the volume read-only");
        assert.ok(await exists(`${e.dataRoot}`));
      });

      await t.step("exec runs in the container with -e and -w", async () => {
        await must(e, ["run", "-d", "--name", "ex", "--network", "none", e.image, "sleep", "1000"]);
        const out = await must(e, [
          "exec",
          "-e",
          "GREETING=hi",
          "-w",
          "/tmp",
          "ex",
          "sh",
          "-c",
          'echo "$GREETING from $(pwd)"',
        ]);
        assert.equal(out, "hi from /tmp\n");
        const code = await b(e, ["exec", "ex", "sh", "-c", "exit 3"]);
        assert.equal(code.code, 3);
        await must(e, ["rm", "-f", "ex"]);
      });

      await t.step(
        "run -d -p publishes a port on loopback and the host's address; rm -f takes veth and rules",
        async () => {
          const port = freePort();
          const id = (await must(e, [
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            `${port}:80`,
            e.image,
            "sh",
            "-c",
            "mkdir -p /www && echo 'hello from web' > /www/index.html && exec httpd -f -p 80 -h /www",
          ])).trim();
          const cniId = `${e.ns}-${id}`;
          assert.equal((await bridgePorts("berth0")).length, 1, "one veth on the default bridge");
          for (const host of ["127.0.0.1", hostAddress()]) {
            let body = "";
            await waitFor(`the page on ${host}:${port}`, async () => {
              body = await fetch(`http://${host}:${port}/`).then((r) => r.text(), () => "");
              return body !== "";
            });
            assert.equal(body, "hello from web\n", host);
          }
          assert.equal(await must(e, ["port", "web"]), `80/tcp -> 0.0.0.0:${port}\n`);
          assert.ok(
            (await rulesMatching(new RegExp(cniId))).length > 0,
            "portmap and masquerade rules in place",
          );
          // Berth's shim attached the network itself: runc was given no network hook to run.
          const config = JSON.parse(
            await Deno.readTextFile(
              `${e.daemon.state}/io.containerd.runtime.v2.task/${e.ns}/${id}/config.json`,
            ),
          );
          assert.equal(
            JSON.stringify(config.hooks ?? {}).includes("oci-hook"),
            false,
            "no oci-hook left for runc",
          );
          await must(e, ["rm", "-f", "web"]);
          assert.equal((await must(e, ["ctr", "c", "ls", "-q"])).trim(), "");
          assert.deepEqual(await bridgePorts("berth0"), [], "the veth is gone");
          assert.deepEqual(await rulesMatching(new RegExp(cniId)), [], "its iptables rules are gone");
          assert.deepEqual(await rulesMatching(new RegExp(`--dport ${port}\\b`)), [], "no DNAT for its port");
        },
      );

      await t.step(
        "run -d --rm: once it exits the daemon removes the container, its veth, folder and anonymous volume",
        async () => {
          const volumesBefore = await must(e, ["volume", "ls", "-q"]);
          const id = (await must(e, [
            "run",
            "-d",
            "--rm",
            "--name",
            "shortlived",
            "-v",
            "/scratch",
            e.image,
            "sh",
            "-c",
            "echo bye; sleep 2",
          ])).trim();
          const info = JSON.parse(await must(e, ["ctr", "c", "info", id])) as {
            Labels: Record<string, string>;
          };
          const dir = info.Labels["nerdctl/state-dir"]!;
          assert.ok(await exists(dir), "the container has its folder while it runs");
          assert.equal((await bridgePorts("berth0")).length, 1, "one veth on the default bridge");
          assert.notEqual(await must(e, ["volume", "ls", "-q"]), volumesBefore, "an anonymous volume");
          await waitFor("the exited --rm container to be removed", async () => {
            return (await must(e, ["ps", "-a", "-q"])).trim() === "";
          }, 30_000);
          assert.equal((await must(e, ["ctr", "c", "ls", "-q"])).trim(), "");
          assert.equal(await exists(dir), false, "its folder is gone");
          assert.deepEqual(await bridgePorts("berth0"), [], "its veth is gone");
          assert.equal(await must(e, ["volume", "ls", "-q"]), volumesBefore, "its anonymous volume is gone");
          assert.doesNotMatch(
            await must(e, ["ctr", "snapshots", "ls"]),
            new RegExp(id),
            "its snapshot is gone",
          );
        },
      );

      await t.step({
        name:
          "with containerd-shim-runc-v2, runc runs the OCI hook: a published port is served, rm -f takes it",
        ignore: !(await exists(FOREIGN_SHIM)),
        fn: async () => {
          const port = freePort();
          // In the foreground: a detached task's json-file log binary needs a compiled berth under a foreign shim.
          const child = berthCommand([
            ...globalFlags(e),
            "run",
            "--name",
            "foreign",
            "--runtime",
            FOREIGN_SHIM,
            "-p",
            `${port}:80`,
            e.image,
            "sh",
            "-c",
            "mkdir -p /www && echo 'hello from foreign' > /www/index.html && exec httpd -f -p 80 -h /www",
          ]).spawn();
          const exited = child.output();
          try {
            let body = "";
            await waitFor("the foreign shim's page", async () => {
              body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => "");
              return body !== "";
            }, 30_000);
            assert.equal(body, "hello from foreign\n");
            const id = (await must(e, ["ctr", "c", "ls", "-q"])).trim();
            const config = JSON.parse(
              await Deno.readTextFile(
                `${e.daemon.state}/io.containerd.runtime.v2.task/${e.ns}/${id}/config.json`,
              ),
            );
            assert.ok(JSON.stringify(config.hooks).includes("oci-hook"), "runc has the hooks to run");
            assert.equal((await bridgePorts("berth0")).length, 1, "one veth on the default bridge");
            await must(e, ["rm", "-f", "foreign"]);
            assert.deepEqual(await bridgePorts("berth0"), [], "the veth is gone");
            assert.deepEqual(
              await rulesMatching(new RegExp(`${e.ns}-${id}`)),
              [],
              "its iptables rules are gone",
            );
            assert.deepEqual(
              await rulesMatching(new RegExp(`--dport ${port}\\b`)),
              [],
              "no DNAT for its port",
            );
          } finally {
            await b(e, ["rm", "-f", "foreign"]);
            await exited;
          }
        },
      });

      await t.step("--restart always brings a killed container back", async () => {
        await must(e, [
          "run",
          "-d",
          "--name",
          "phoenix",
          "--restart",
          "always",
          "--network",
          "none",
          e.image,
          "sleep",
          "1000",
        ]);
        const pidOf = async () => {
          const r = await b(e, ["inspect", "phoenix"]);
          return r.code === 0 ? (JSON.parse(r.stdout)[0]?.State?.Pid as number) ?? 0 : 0;
        };
        const first = await pidOf();
        assert.ok(first > 0);
        Deno.kill(first, "SIGKILL");
        await waitFor("a new task", async () => {
          const pid = await pidOf();
          return pid > 0 && pid !== first;
        }, 15_000);
        // stop is a stop by hand: the monitor leaves it down.
        await must(e, ["stop", "-t", "1", "phoenix"]);
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(await pidOf(), 0, "a stopped container stays down");
        await must(e, ["rm", "phoenix"]);
      });

      await t.step(
        "compose up -d, logs, down -v: services reach each other by name and leave nothing",
        async () => {
          const project = `${scratch}/proj`;
          await Deno.mkdir(project);
          await Deno.writeTextFile(`${project}/.env`, `IMAGE=${e.image}\n`);
          await Deno.writeTextFile(
            `${project}/compose.yaml`,
            [
              "services:",
              "  web:",
              "    image: ${IMAGE}",
              `    command: ["sh", "-c", "mkdir -p /www && echo 'hello from web' > /www/index.html && exec httpd -f -p 80 -h /www"]`,
              '    volumes: ["data:/data"]',
              "    healthcheck:",
              '      test: ["CMD-SHELL", "wget -qO- http://127.0.0.1/ >/dev/null"]',
              "      interval: 1s",
              "      retries: 20",
              "  client:",
              "    image: ${IMAGE}",
              '    command: ["sh", "-c", "while true; do wget -qO- http://web/ || echo failed; sleep 1; done"]',
              "    depends_on:",
              "      web:",
              "        condition: service_healthy",
              "volumes:",
              "  data: {}",
              "",
            ].join("\n"),
          );
          const compose = (args: string[]) => b(e, ["compose", "--project-directory", project, ...args]);
          const up = await compose(["up", "-d"]);
          assert.equal(up.code, 0, up.stdout + up.stderr);
          const ps = await compose(["ps"]);
          assert.match(ps.stdout, /proj-web-1/);
          assert.match(ps.stdout, /proj-client-1/);
          let logs = "";
          await waitFor("the client's log to show the page", async () => {
            logs = (await compose(["logs", "client"])).stdout;
            return logs.includes("hello from web");
          }, 20_000);
          assert.match(logs, /proj-client-1\s*\| hello from web/);
          const nets = await must(e, ["network", "ls"]);
          assert.match(nets, /proj_default/);
          const down = await compose(["down", "-v"]);
          assert.equal(down.code, 0, down.stdout + down.stderr);
          assert.equal((await must(e, ["ctr", "c", "ls", "-q"])).trim(), "");
          assert.doesNotMatch(await must(e, ["network", "ls"]), /proj_default/);
          assert.doesNotMatch(await must(e, ["volume", "ls", "-q"]), /proj_data/);
          assert.deepEqual(
            await rulesMatching(new RegExp(`${e.ns}-`)),
            [],
            "no rule of the project's containers",
          );
        },
      );

      await t.step(
        "a network its plugins cannot attach fails run with the CNI error and leaves nothing",
        async () => {
          // bridge succeeds (a veth, a lease, masquerade rules), then tuning fails: all of it must go again.
          const bridge = `bb${crypto.randomUUID().slice(0, 8)}`;
          const ipam = `${scratch}/ipam-broken`;
          const conf = `${e.confDir}/berth-broken.conflist`;
          await Deno.writeTextFile(
            conf,
            JSON.stringify({
              cniVersion: "1.0.0",
              name: "broken",
              plugins: [
                {
                  type: "bridge",
                  bridge,
                  isGateway: true,
                  ipMasq: true,
                  ipam: {
                    type: "host-local",
                    ranges: [[{ subnet: `10.250.${200 + Math.floor(Math.random() * 50)}.0/24` }]],
                    dataDir: ipam,
                  },
                },
                { type: "tuning", sysctl: { "net.ipv4.conf.IFNAME.berth_no_such_sysctl": "1" } },
              ],
            }),
          );
          try {
            const r = await b(e, [
              "run",
              "-d",
              "--name",
              "broken",
              "--network",
              "broken",
              e.image,
              "sleep",
              "100",
            ]);
            assert.equal(r.code, 1, r.stdout);
            assert.match(r.stderr, /Cannot attach container \w+ to network broken: CNI plugin tuning/);
            assert.equal((await must(e, ["ctr", "c", "ls", "-q"])).trim(), "", "no container");
            assert.deepEqual(await bridgePorts(bridge), [], "no veth");
            assert.deepEqual(await rulesMatching(new RegExp(`${e.ns}-`)), [], "no rule");
            const leases = await Array.fromAsync(Deno.readDir(`${ipam}/broken`)).catch(() => []);
            assert.deepEqual(leases.filter((l) => /^\d+\./.test(l.name)), [], "no lease");
          } finally {
            await Deno.remove(conf).catch(() => {});
            await deleteLink(bridge).catch(() => {});
          }
        },
      );

      await t.step("bad input: clear errors and nothing half-created", async () => {
        const before = (await must(e, ["ctr", "snapshots", "ls"])).split("\n").length;
        const missing = await b(e, [
          "run",
          "-d",
          "--network",
          "none",
          "--plain-http",
          "127.0.0.1:1/berth/absent:v1",
          "true",
        ]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /absent:v1.*cannot be pulled/);
        const unknown = await b(e, ["run", "-d", "--network", "nosuchnet", e.image, "true"]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /nosuchnet/);
        const dup = await b(e, ["run", "-d", "--name", "dup", "--network", "none", e.image, "sleep", "100"]);
        assert.equal(dup.code, 0);
        const again = await b(e, ["run", "-d", "--name", "dup", "--network", "none", e.image, "true"]);
        assert.match(again.stderr, /name "dup" is already in use/);
        const badFlag = await b(e, ["run", "-d", "-p", "99999:80", e.image, "true"]);
        assert.match(badFlag.stderr, /Invalid port "99999"/);
        const busy = Deno.listen({ hostname: "0.0.0.0", port: 0 });
        try {
          const taken = await b(e, [
            "run",
            "-d",
            "-p",
            `${(busy.addr as Deno.NetAddr).port}:80`,
            e.image,
            "true",
          ]);
          assert.equal(taken.code, 1);
          assert.match(taken.stderr, /is already in use on this host/);
        } finally {
          busy.close();
        }
        await must(e, ["rm", "-f", "dup"]);
        assert.equal((await must(e, ["ctr", "c", "ls", "-q"])).trim(), "");
        assert.equal((await must(e, ["ctr", "snapshots", "ls"])).split("\n").length, before);
        const dirs = await Array.fromAsync(Deno.readDir(`${e.dataRoot}`)).catch(() => []);
        for (const d of dirs) {
          const left = await Array.fromAsync(Deno.readDir(`${e.dataRoot}/${d.name}/containers/${e.ns}`))
            .catch(
              () => [],
            );
          assert.deepEqual(left.map((x) => x.name), [], "no container folder left");
        }
      });
    } finally {
      if (env) {
        await removeAll(env).catch(() => {});
        // User networks (the compose project's): their conflists, bridges and leases.
        const nets = (await b(env, ["network", "ls", "-q"]).catch(() => ({ stdout: "" }))).stdout;
        for (const id of nets.split("\n").map((l) => l.trim()).filter(Boolean)) {
          await b(env, ["network", "rm", id]).catch(() => {});
        }
        await Promise.resolve(env.daemon[Symbol.asyncDispose]()).catch(() => {});
        await removeNamespaceCgroups(env.ns).catch(() => {});
        // The step with containerd's own shim gives runc its state folder there.
        await Deno.remove(`/run/containerd/runc/${env.ns}`, { recursive: true }).catch(() => {});
        await restoreIptables(iptablesBefore, new RegExp(`${env.ns}-`)).catch(() => {});
      }
      if (!hadBridge) {
        await deleteLink("berth0").catch(() => {});
        // The firewall plugin's per-bridge rules outlive the bridge unless taken with it (as network rm does).
        await removeBridgeIsolationRules("berth0").catch(() => {});
        await Deno.remove("/var/lib/cni/networks/bridge", { recursive: true }).catch(() => {});
      }
      await registry[Symbol.asyncDispose]();
      await Deno.remove(scratch, { recursive: true }).catch(() => {});
    }
  },
});
