import assert from "node:assert/strict";
import { loadProject } from "./load.ts";
import type { ComposeProject } from "./model.ts";
import { FakeComposeBackend } from "./testing.ts";
import * as engine from "./engine.ts";
import { LABELS } from "./convert.ts";

/** Loads `yaml` as compose.yaml of a temp project folder named "shop". */
async function projectOf(yaml: string, files: Record<string, string> = {}): Promise<ComposeProject> {
  const root = await Deno.makeTempDir({ prefix: "berth-compose-engine-" });
  try {
    await Deno.mkdir(`${root}/shop`);
    await Deno.writeTextFile(`${root}/shop/compose.yaml`, yaml);
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${root}/shop/${name}`, text);
    return loadProject({ cwd: `${root}/shop`, env: {}, warn: () => {} });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Options for a test: a clock that advances only by the engine's sleeps, which are recorded. */
function testOptions() {
  let clock = 0;
  const slept: number[] = [];
  const progress: string[] = [];
  let nextPort = 49_200;
  return {
    slept,
    progress,
    options: {
      progress: (l: string) => progress.push(l),
      sleep: (ms: number) => {
        slept.push(ms);
        clock += ms;
        return Promise.resolve();
      },
      now: () => clock,
      allocateHostPort: () => Promise.resolve(nextPort++),
      pollIntervalMs: 100,
    },
  };
}

const APP = `
services:
  web:
    image: nginx
    ports: ["8080:80"]
    depends_on:
      db: { condition: service_healthy }
      migrate: { condition: service_completed_successfully }
    networks: [front, back]
  db:
    image: postgres
    volumes: [pgdata:/var/lib/postgresql/data, /scratch]
    networks: [back]
    healthcheck:
      test: ["CMD", "pg_isready"]
      interval: 2s
      timeout: 1s
      retries: 3
  migrate:
    image: busybox
    command: ["true"]
    networks: [back]
networks:
  front:
  back:
volumes:
  pgdata:
`;

/** `migrate` runs to completion (exit 0) at its first poll. */
function completeMigrations(b: FakeComposeBackend, exitCode = 0) {
  const list = b.listContainers.bind(b);
  b.listContainers = (labels) => {
    const m = b.named("shop-migrate-1");
    if (m?.running) {
      m.running = false;
      m.exitCode = exitCode;
    }
    return list(labels);
  };
}

Deno.test("up -d makes networks and volumes, pulls missing images and starts services in dependency order", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  b.images.add("postgres");
  completeMigrations(b);
  const t = testOptions();
  await engine.up(project, b, { ...t.options, detach: true });
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), [
    "pull busybox",
    "pull nginx",
    "network create shop_back",
    "network create shop_front",
    "volume create shop_pgdata",
    "create shop-db-1",
    "start shop-db-1",
    "create shop-migrate-1",
    "start shop-migrate-1",
    "create shop-web-1",
    "start shop-web-1",
  ]);
  assert.deepEqual(b.networks.get("shop_back"), { [LABELS.project]: "shop", [LABELS.network]: "back" });
  assert.deepEqual(b.volumes.get("shop_pgdata"), { [LABELS.project]: "shop", [LABELS.volume]: "pgdata" });
  const web = b.named("shop-web-1")!.options;
  assert.deepEqual(web.networks, ["shop_front", "shop_back"]);
  assert.deepEqual(web.aliases, ["web"]);
  assert.equal(web.labels![LABELS.service], "web");
  assert.ok(t.progress.includes(" Container shop-web-1  Started"));
});

Deno.test("up waits for a service_healthy dependency by running its healthcheck at its interval", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b);
  const codes = [1, 1, 0];
  b.onExec = (_c, argv, options) => {
    assert.deepEqual(argv, ["pg_isready"]);
    assert.equal(options.quiet, true);
    return codes.shift()!;
  };
  const t = testOptions();
  await engine.up(project, b, { ...t.options, detach: true });
  const execs = b.calls.filter((c) => c.startsWith("exec"));
  assert.deepEqual(execs, [
    "exec shop-db-1 pg_isready",
    "exec shop-db-1 pg_isready",
    "exec shop-db-1 pg_isready",
  ]);
  assert.deepEqual(t.slept, [2000, 2000]);
  // web is created only after the third check passed.
  assert.ok(b.calls.lastIndexOf("exec shop-db-1 pg_isready") < b.calls.indexOf("create shop-web-1"));
});

Deno.test("up fails clearly on an unhealthy dependency and keeps what it made for down", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b);
  b.onExec = () => 1;
  const t = testOptions();
  await assert.rejects(
    () => engine.up(project, b, { ...t.options, detach: true }),
    /Cannot start service "web": Dependency "db" failed: container shop-db-1 is unhealthy \(healthcheck failed 3 times; last: exit code 1\)/,
  );
  assert.equal(b.calls.filter((c) => c.startsWith("exec")).length, 3);
  assert.equal(b.named("shop-web-1"), undefined);
  assert.equal(b.named("shop-db-1")!.running, true);
  // down removes what was made: containers, networks, and with -v the named and anonymous volumes.
  await engine.down(project, b, { volumes: true });
  assert.equal(b.containers.size, 0);
  assert.equal(b.networks.size, 0);
  assert.equal(b.volumes.size, 0);
});

Deno.test("a health check that outlives its timeout counts as a failure", async () => {
  const project = await projectOf(
    APP.replace("timeout: 1s", "timeout: 10ms").replace("retries: 3", "retries: 1"),
  );
  const b = new FakeComposeBackend();
  b.onExec = (_c, _argv, options) =>
    new Promise((_, reject) => options.signal!.addEventListener("abort", () => reject(new Error("killed"))));
  await assert.rejects(
    () => engine.up(project, b, { ...testOptions().options, detach: true, services: ["db", "web"] }),
    /container shop-db-1 is unhealthy \(healthcheck failed 1 times; last: timed out after 10 ms\)/,
  );
});

Deno.test("up fails when a service_completed_successfully dependency exits non-zero", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b, 3);
  await assert.rejects(
    () => engine.up(project, b, { ...testOptions().options, detach: true }),
    /Cannot start service "web": Dependency "migrate" did not complete successfully: container shop-migrate-1 exited with 3/,
  );
  assert.equal(b.named("shop-web-1"), undefined);
});

Deno.test("up -d again leaves matching containers alone, starts stopped ones and recreates changed services", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b);
  const t = testOptions();
  await engine.up(project, b, { ...t.options, detach: true });
  const webId = b.named("shop-web-1")!.id;
  b.calls.length = 0;
  await engine.up(project, b, { ...t.options, detach: true });
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), ["start shop-migrate-1"]);
  assert.equal(b.named("shop-web-1")!.id, webId);

  b.named("shop-web-1")!.running = false;
  b.calls.length = 0;
  await engine.up(project, b, { ...t.options, detach: true });
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), [
    "start shop-migrate-1",
    "start shop-web-1",
  ]);

  const changed = await projectOf(APP.replace("image: nginx", "image: nginx:2"));
  b.calls.length = 0;
  await engine.up(changed, b, { ...t.options, detach: true });
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), [
    "pull nginx:2",
    "start shop-migrate-1",
    "stop shop-web-1 10",
    "rm shop-web-1 -v",
    "create shop-web-1",
    "start shop-web-1",
  ]);
  assert.equal(b.named("shop-web-1")!.options.image, "nginx:2");
});

Deno.test("a half-way failure leaves a consistent project: up again continues, down removes it", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b);
  b.failWhen = (call) => call === "start shop-web-1" ? new Error("port 8080 is taken") : undefined;
  await assert.rejects(
    () => engine.up(project, b, { ...testOptions().options, detach: true }),
    (err: Error) => {
      assert.match(err.message, /^Cannot start service "web": port 8080 is taken/);
      assert.match(err.message, /"berth compose down" removes it/);
      return true;
    },
  );
  assert.equal(b.named("shop-web-1")!.running, false);
  b.failWhen = () => undefined;
  b.calls.length = 0;
  await engine.up(project, b, { ...testOptions().options, detach: true });
  // Nothing is made twice: the created web container is the one started.
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), [
    "start shop-migrate-1",
    "start shop-web-1",
  ]);
  b.calls.length = 0;
  await engine.down(project, b);
  assert.deepEqual(b.calls, [
    "stop shop-web-1 10",
    "rm shop-web-1",
    "rm shop-migrate-1",
    "stop shop-db-1 10",
    "rm shop-db-1",
    "network rm shop_front",
    "network rm shop_back",
  ]);
  // Without -v, volumes stay (the named one and the anonymous one of db).
  assert.equal(b.volumes.size, 2);
});

Deno.test("an external network or volume must exist and is never removed", async () => {
  const yaml = `
services:
  a: { image: busybox, networks: [ext], volumes: [keep:/k] }
networks:
  ext: { external: true }
volumes:
  keep: { external: true, name: precious }
`;
  const project = await projectOf(yaml);
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  await assert.rejects(
    () => engine.up(project, b, { detach: true }),
    /Network "ext" declared as external could not be found/,
  );
  b.networks.set("ext", {});
  await assert.rejects(
    () => engine.up(project, b, { detach: true }),
    /Volume "precious" declared as external/,
  );
  b.volumes.set("precious", {});
  await engine.up(project, b, { detach: true });
  await engine.down(project, b, { volumes: true });
  assert.ok(b.networks.has("ext"));
  assert.ok(b.volumes.has("precious"));
});

Deno.test("replicas get their own number and free host port; scaling down removes the extra ones", async () => {
  const project = await projectOf(
    "services:\n  w:\n    image: busybox\n    deploy: { replicas: 3 }\n    ports: ['80']\n",
  );
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  const t = testOptions();
  await engine.up(project, b, { ...t.options, detach: true });
  const ports = ["shop-w-1", "shop-w-2", "shop-w-3"].map((n) => b.named(n)!.options.ports![0]!.hostPort);
  assert.deepEqual(ports, [49200, 49201, 49202]);
  const rows = await engine.ps(project, b);
  assert.deepEqual(rows.map((r) => r.name), ["shop-w-1", "shop-w-2", "shop-w-3"]);
  const one = await projectOf("services:\n  w:\n    image: busybox\n    ports: ['80']\n");
  b.calls.length = 0;
  await engine.up(one, b, { ...t.options, detach: true });
  assert.deepEqual(b.calls, ["stop shop-w-2 10", "rm shop-w-2 -v", "stop shop-w-3 10", "rm shop-w-3 -v"]);
});

Deno.test("orphans are reported, and removed with --remove-orphans", async () => {
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  const two = await projectOf("services:\n  a: { image: busybox }\n  old: { image: busybox }\n");
  await engine.up(two, b, { detach: true });
  const one = await projectOf("services:\n  a: { image: busybox }\n");
  const t = testOptions();
  await engine.up(one, b, { ...t.options, detach: true });
  assert.match(t.progress[0]!, /orphan containers \(shop-old-1\).*--remove-orphans/);
  assert.ok(b.named("shop-old-1"));
  await engine.down(one, b, { removeOrphans: true });
  assert.equal(b.containers.size, 0);
});

Deno.test("exec, logs, stop, start and restart act on the project's containers", async () => {
  const project = await projectOf(
    "services:\n  a: { image: busybox }\n  b: { image: busybox, depends_on: [a] }\n",
  );
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  await engine.up(project, b, { detach: true });
  b.onExec = (_c, argv, options) => {
    assert.deepEqual(options, { tty: false, env: ["X=1"], user: "nobody" });
    return argv.length;
  };
  assert.equal(
    await engine.exec(project, b, {
      service: "b",
      command: ["ls", "-l"],
      tty: false,
      env: ["X=1"],
      user: "nobody",
    }),
    2,
  );
  await assert.rejects(
    () => engine.exec(project, b, { service: "nope", command: ["x"] }),
    /No such service: "nope"/,
  );

  b.named("shop-a-1")!.log.push("one", "two");
  b.named("shop-b-1")!.log.push("three");
  const lines: string[] = [];
  await engine.logs(project, b, (l) => lines.push(l), { tail: 1 });
  assert.deepEqual(lines, ["shop-a-1  | two", "shop-b-1  | three"]);

  b.calls.length = 0;
  await engine.stop(project, b, { timeoutS: 3 });
  assert.deepEqual(b.calls, ["stop shop-b-1 3", "stop shop-a-1 3"]);
  assert.deepEqual(await engine.ps(project, b), []);
  assert.equal((await engine.ps(project, b, { all: true })).length, 2);
  await assert.rejects(
    () => engine.exec(project, b, { service: "a", command: ["x"] }),
    /Container shop-a-1 is not running/,
  );
  b.calls.length = 0;
  await engine.start(project, b);
  assert.deepEqual(b.calls, ["start shop-a-1", "start shop-b-1"]);
  b.calls.length = 0;
  await engine.restart(project, b, { services: ["a"] });
  assert.deepEqual(b.calls, ["stop shop-a-1 10", "start shop-a-1"]);
});

Deno.test("up without -d follows the logs until the signal, then stops the containers", async () => {
  const project = await projectOf("services:\n  a: { image: busybox }\n");
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  const abort = new AbortController();
  const lines: string[] = [];
  const done = engine.up(project, b, {
    signal: abort.signal,
    write: (l) => {
      lines.push(l);
      abort.abort();
    },
  });
  // The container logs a line once started; the fake delivers the log at attach time.
  b.failWhen = (call) => {
    if (call === "start shop-a-1") queueMicrotask(() => b.named("shop-a-1")!.log.push("hello"));
    return undefined;
  };
  await done;
  assert.deepEqual(lines, ["shop-a-1  | hello"]);
  assert.equal(b.named("shop-a-1")!.running, false);
});

Deno.test("pull pulls each image once; config renders a file that loads back to the same project", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  await engine.pull(project, b);
  assert.deepEqual(b.calls, ["pull nginx", "pull postgres", "pull busybox"]);
  assert.equal(engine.config(project, { services: true }), "web\ndb\nmigrate\n");
  const again = await projectOf(engine.config(project));
  assert.deepEqual(again.services, project.services);
  assert.deepEqual(again.networks, project.networks);
  assert.deepEqual(again.volumes, project.volumes);
});

Deno.test("service_healthy on a dependency without a healthcheck is an error, and the dependent is not made", async () => {
  const project = await projectOf(
    "services:\n  a: { image: busybox }\n  b:\n    image: busybox\n    depends_on: { a: { condition: service_healthy } }\n",
  );
  const b = new FakeComposeBackend();
  b.images.add("busybox");
  await assert.rejects(
    () => engine.up(project, b, { detach: true }),
    /Cannot start service "b": Dependency "a" has no healthcheck, so it can never be service_healthy/,
  );
  assert.equal(b.named("shop-b-1"), undefined);
});

Deno.test("up --no-start creates containers without starting or waiting; a later up starts them", async () => {
  const project = await projectOf(APP);
  const b = new FakeComposeBackend();
  completeMigrations(b);
  await engine.up(project, b, { noStart: true });
  assert.deepEqual(b.calls.filter((c) => c.startsWith("start") || c.startsWith("exec")), []);
  assert.equal(b.containers.size, 3);
  b.calls.length = 0;
  await engine.up(project, b, { ...testOptions().options, detach: true });
  assert.deepEqual(b.calls.filter((c) => !c.startsWith("exec")), [
    "start shop-db-1",
    "start shop-migrate-1",
    "start shop-web-1",
  ]);
});
