import assert from "node:assert/strict";
import { type LoadOptions, loadProject } from "./load.ts";
import { containerName, LABELS, startOrder, toRunOptions } from "./convert.ts";

/** A fresh project directory holding `files`; removed after `fn`. */
async function withProject(
  files: Record<string, string>,
  fn: (dir: string) => void | Promise<void>,
  dirName = "My.App",
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "berth-compose-load-" });
  const dir = `${root}/${dirName}`;
  await Deno.mkdir(dir);
  try {
    for (const [name, text] of Object.entries(files)) {
      const path = `${dir}/${name}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(path, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const load = (dir: string, options: LoadOptions = {}) =>
  loadProject({ cwd: dir, env: {}, warn: () => {}, ...options });

const FULL = `
name: \${NAME:-shop}
x-common: &common
  restart: unless-stopped
  labels: [tier=back]
services:
  web:
    <<: *common
    image: nginx:\${TAG}
    command: nginx -g "daemon off;"
    entrypoint: ["/docker-entrypoint.sh"]
    environment:
      - MODE=prod
      - FROM_ENV
      - ABSENT
    env_file: web.env
    ports:
      - "8080:80"
      - "127.0.0.1:5353:53/udp"
      - "9000-9001:7000-7001"
      - target: 443
        published: "8443"
        host_ip: 0.0.0.0
    volumes:
      - data:/var/lib/data
      - ./html:/usr/share/nginx/html:ro
      - /etc/hosts:/etc/extra-hosts
      - /cache
      - type: bind
        source: ./conf
        target: /etc/nginx/conf.d
        read_only: true
    networks:
      front:
        aliases: [www]
      back:
    depends_on:
      db:
        condition: service_healthy
      init:
        condition: service_completed_successfully
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
      timeout: 500ms
      retries: 5
      start_period: 2s
    working_dir: /srv
    user: "1000:1000"
    hostname: web
    deploy:
      resources:
        limits: { memory: 512m, cpus: "0.5" }
  db:
    image: postgres:16
    environment: { POSTGRES_PASSWORD: secret, PORT: 5432 }
    volumes: [{ type: volume, source: pgdata, target: /var/lib/postgresql/data }]
    networks: [back]
    healthcheck: { test: ["CMD", "pg_isready"], interval: 1s }
    scale: 1
  init:
    image: busybox
    command: ["sh", "-c", "echo $$HOME"]
  worker:
    image: busybox
    deploy: { replicas: 3 }
    ports: ["80"]
    depends_on: [db]
networks:
  front:
  back:
    ipam: { config: [{ subnet: 10.99.0.0/24 }] }
  outside:
    external: true
volumes:
  data:
  pgdata:
    name: shared-pg
  old:
    external: true
`;

Deno.test("loadProject() reads the compose spec subset into a normalized project", async () => {
  await withProject({
    "compose.yaml": FULL,
    ".env": "TAG=1.27\nFROM_ENV=dotenv\n",
    "web.env": "A=1\nMODE=dev\n",
  }, (dir) => {
    const p = load(dir, { env: { FROM_ENV: "process" } });
    assert.equal(p.name, "shop");
    assert.equal(p.workingDir, dir);
    assert.deepEqual(p.configFiles, [`${dir}/compose.yaml`]);
    assert.deepEqual(Object.keys(p.services), ["web", "db", "init", "worker"]);
    const web = p.services.web!;
    assert.equal(web.image, "nginx:1.27");
    assert.deepEqual(web.command, ["nginx", "-g", "daemon off;"]);
    assert.deepEqual(web.entrypoint, ["/docker-entrypoint.sh"]);
    // env_file first, environment over it; the process environment wins over .env; unset names are left out.
    assert.deepEqual(web.environment, { A: "1", FROM_ENV: "process", MODE: "prod" });
    assert.deepEqual(web.ports, [
      { target: 80, published: 8080, protocol: "tcp" },
      { target: 53, published: 5353, hostIP: "127.0.0.1", protocol: "udp" },
      { target: 7000, published: 9000, protocol: "tcp" },
      { target: 7001, published: 9001, protocol: "tcp" },
      { target: 443, published: 8443, hostIP: "0.0.0.0", protocol: "tcp" },
    ]);
    assert.deepEqual(web.volumes, [
      { type: "volume", source: "data", target: "/var/lib/data", readOnly: false },
      { type: "bind", source: `${dir}/html`, target: "/usr/share/nginx/html", readOnly: true },
      { type: "bind", source: "/etc/hosts", target: "/etc/extra-hosts", readOnly: false },
      { type: "volume", target: "/cache", readOnly: false },
      { type: "bind", source: `${dir}/conf`, target: "/etc/nginx/conf.d", readOnly: true },
    ]);
    assert.deepEqual(web.networks, { front: { aliases: ["www"] }, back: { aliases: [] } });
    assert.deepEqual(web.dependsOn, {
      db: { condition: "service_healthy" },
      init: { condition: "service_completed_successfully" },
    });
    assert.deepEqual(web.healthcheck, {
      test: ["CMD-SHELL", "curl -f http://localhost"],
      intervalMs: 90_000,
      timeoutMs: 500,
      retries: 5,
      startPeriodMs: 2000,
    });
    assert.deepEqual(web.restart, { name: "unless-stopped" });
    assert.deepEqual(web.labels, { tier: "back" });
    assert.equal(web.user, "1000:1000");
    assert.equal(web.memoryBytes, 512 * 1024 * 1024);
    assert.equal(web.cpus, 0.5);
    assert.deepEqual(p.services.db!.environment, { PORT: "5432", POSTGRES_PASSWORD: "secret" });
    assert.deepEqual(p.services.init!.command, ["sh", "-c", "echo $HOME"]);
    assert.deepEqual(p.services.init!.networks, { default: { aliases: [] } });
    assert.equal(p.services.worker!.scale, 3);
    assert.deepEqual(p.services.worker!.ports, [{ target: 80, protocol: "tcp" }]);
    assert.deepEqual(p.networks, {
      front: { name: "shop_front", external: false, labels: {} },
      back: { name: "shop_back", external: false, labels: {}, subnet: "10.99.0.0/24" },
      outside: { name: "outside", external: true, labels: {} },
      default: { name: "shop_default", external: false, labels: {} },
    });
    assert.deepEqual(p.volumes, {
      data: { name: "shop_data", external: false, labels: {} },
      pgdata: { name: "shared-pg", external: false, labels: {} },
      old: { name: "old", external: true, labels: {} },
    });
    assert.deepEqual(startOrder(p), ["db", "init", "web", "worker"]);
    assert.deepEqual(startOrder(p, ["worker"]), ["db", "worker"]);
  });
});

Deno.test("toRunOptions() names, labels and wires a replica as nerdctl compose does", async () => {
  await withProject({ "compose.yaml": FULL, ".env": "TAG=1.27", "web.env": "" }, (dir) => {
    const p = load(dir);
    const web = toRunOptions(p, p.services.web!, 1);
    assert.equal(web.name, "shop-web-1");
    assert.equal(web.labels![LABELS.project], "shop");
    assert.equal(web.labels![LABELS.service], "web");
    assert.equal(web.labels![LABELS.number], "1");
    assert.match(web.labels![LABELS.configHash]!, /^[0-9a-f]{64}$/);
    assert.equal(web.labels!.tier, "back");
    assert.deepEqual(web.networks, ["shop_front", "shop_back"]);
    assert.deepEqual(web.aliases, ["web", "www"]);
    assert.deepEqual(web.volumes![0], {
      kind: "volume",
      name: "shop_data",
      target: "/var/lib/data",
      readOnly: false,
    });
    assert.deepEqual(web.volumes![3], { kind: "anonymous", target: "/cache", readOnly: false });
    assert.deepEqual(web.ports![1], {
      hostIP: "127.0.0.1",
      hostPort: 5353,
      containerPort: 53,
      protocol: "udp",
    });
    assert.deepEqual(toRunOptions(p, p.services.db!, 1).volumes, [
      { kind: "volume", name: "shared-pg", target: "/var/lib/postgresql/data", readOnly: false },
    ]);
    const worker = p.services.worker!;
    assert.throws(() => toRunOptions(p, worker, 2), /publishes port 80 without a host port/);
    const w2 = toRunOptions(p, worker, 2, { hostPortFor: () => 49200 });
    assert.equal(w2.name, "shop-worker-2");
    assert.deepEqual(w2.ports, [{ hostIP: "0.0.0.0", hostPort: 49200, containerPort: 80, protocol: "tcp" }]);
    assert.deepEqual(w2.networks, ["shop_default"]);
    assert.equal(containerName(p, worker, 3), "shop-worker-3");
  });
});

Deno.test("loadProject() chooses the project name: -p, COMPOSE_PROJECT_NAME, name:, then the folder", async () => {
  const file = "name: fromfile\nservices: { a: { image: busybox } }\n";
  await withProject({ "compose.yaml": file }, (dir) => {
    assert.equal(load(dir, { projectName: "flag" }).name, "flag");
    assert.equal(load(dir, { env: { COMPOSE_PROJECT_NAME: "env" } }).name, "env");
    assert.equal(load(dir).name, "fromfile");
    assert.throws(() => load(dir, { projectName: "Bad Name" }), /Invalid project name "Bad Name"/);
  });
  await withProject({ "docker-compose.yml": "services: { a: { image: busybox } }\n" }, (dir) => {
    const p = load(dir);
    assert.equal(p.name, "myapp");
    assert.deepEqual(p.configFiles, [`${dir}/docker-compose.yml`]);
  });
  await withProject({ ".env": "COMPOSE_PROJECT_NAME=dotenv", "compose.yml": file }, (dir) => {
    assert.equal(load(dir).name, "dotenv");
  });
});

Deno.test("loadProject() finds compose.yaml before the others, with its override, and merges -f files in order", async () => {
  await withProject({
    "compose.yaml": "services:\n  a:\n    image: one\n    environment: [X=1, Y=1]\n    ports: ['1:1']\n",
    "docker-compose.yml": "services: { b: { image: busybox } }\n",
    "compose.override.yaml":
      "services:\n  a:\n    environment: { Y: 2 }\n    ports: ['2:2']\n    command: [x]\n",
    "other.yml": "services:\n  a:\n    image: two\n",
  }, (dir) => {
    const warnings: string[] = [];
    const p = load(dir, { warn: (m) => warnings.push(m) });
    assert.deepEqual(p.configFiles, [`${dir}/compose.yaml`, `${dir}/compose.override.yaml`]);
    assert.match(warnings[0]!, /multiple config files/);
    const a = p.services.a!;
    assert.equal(a.image, "one");
    assert.deepEqual(a.environment, { X: "1", Y: "2" });
    assert.deepEqual(a.ports.map((x) => x.target), [1, 2]);
    assert.deepEqual(a.command, ["x"]);
    const q = load(dir, { files: ["compose.yaml", "other.yml"] });
    assert.deepEqual(q.configFiles, [`${dir}/compose.yaml`, `${dir}/other.yml`]);
    assert.equal(q.services.a!.image, "two");
    assert.deepEqual(q.services.a!.environment, { X: "1", Y: "1" });
  });
  await withProject({}, (dir) => {
    assert.throws(() => load(dir), /No compose file found in .*compose\.yaml, compose\.yml/);
  });
});

Deno.test("loadProject() errors name the file, line and column", async () => {
  const cases: Array<[string, RegExp]> = [
    [
      "services:\n  web:\n    image: x\n    prots: ['80']\n",
      /compose\.yaml:4:5: Unknown key "prots" in service "web"/,
    ],
    ["services:\n  web:\n    build: .\n", /compose\.yaml:3:5: .*build is not supported/],
    [
      "services:\n  web:\n    image: x\n    volumes: [data:/d]\n",
      /compose\.yaml:4:15: .*undefined volume "data"/,
    ],
    [
      "services:\n  web:\n    image: x\n    networks: [nope]\n",
      /compose\.yaml:4:16: .*undefined network "nope"/,
    ],
    [
      "services:\n  web: { image: x, depends_on: [db] }\n",
      /compose\.yaml:2:.*depends on undefined service "db"/,
    ],
    [
      "services:\n  web:\n    image: x\n     bad: indent\n",
      /compose\.yaml:3:12: Invalid YAML: Nested mappings/,
    ],
    [
      "services:\n  web:\n    image: ${REQ:?set REQ}\n",
      /compose\.yaml:3:12: Required variable "REQ" is missing a value: set REQ/,
    ],
    [
      "services:\n  web:\n    image: x\n    healthcheck: { test: x, interval: soon }\n",
      /compose\.yaml:4:39: Interval of healthcheck of service "web": Invalid duration "soon"/,
    ],
    ["services:\n  web:\n    image: x\n    ports: ['80:80:80:80']\n", /compose\.yaml:4:13: .*Invalid port/],
    [
      "services:\n  web:\n    image: x\n    restart: sometimes\n",
      /compose\.yaml:4:14: Invalid restart policy "sometimes"/,
    ],
    [
      "secrets: {}\nservices: { a: { image: x } }\n",
      /compose\.yaml:1:1: Top-level "secrets" is not supported/,
    ],
    [
      "services:\n  a: { image: x, depends_on: [b] }\n  b: { image: x, depends_on: [a] }\n",
      /Dependency cycle between services: a -> b -> a/,
    ],
    ["services:\n  a: { image: x, scale: 2, ports: ['80:80'] }\n", /2 replicas and the fixed host port 80/],
    [
      "services:\n  a: { image: x, env_file: missing.env }\n",
      /compose\.yaml:2:28: Cannot read env_file ".*missing.env" of service "a": not found/,
    ],
    ["version: '3'\n", /No services defined/],
  ];
  for (const [text, expected] of cases) {
    await withProject({ "compose.yaml": text }, (dir) => {
      assert.throws(() => load(dir), (err: Error) => {
        assert.match(err.message, expected);
        return true;
      });
    });
  }
});

Deno.test("loadProject() ignores x- extensions and warns once per unset variable", async () => {
  const file =
    "x-tpl: { cost: $5 }\nservices:\n  a:\n    image: busybox:${T}\n    labels:\n      - v=${T}\n    x-note: hi\n";
  await withProject({ "compose.yaml": file }, (dir) => {
    const warnings: string[] = [];
    const p = load(dir, { warn: (m) => warnings.push(m) });
    assert.equal(p.services.a!.image, "busybox:");
    assert.deepEqual(warnings, ['The "T" variable is not set. Defaulting to a blank string.']);
  });
});
