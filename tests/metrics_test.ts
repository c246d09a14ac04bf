/**
 * The daemon's /v1/metrics against a real daemon, runc, Debian's ctr and a real registry: the whole
 * output parses as Prometheus text (parse-prometheus-text-format, a port of client_golang's expfmt text
 * parser) and as OpenMetrics when asked by Accept (a strict parser below: no npm package reads
 * OpenMetrics); containerd's family names are there; task counts, a container's memory and the pull
 * histogram move as a container is pulled, started, fills memory and stops.
 */
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { berth, startDaemon, type TestDaemon, testDaemonConfig } from "./helpers/daemon.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { removeNamespaceCgroups, runCtr } from "./helpers/tasks.ts";

interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
  }[];
}

/** containerd 1.6's families that any daemon serves, task or not. */
const CONTAINERD_FAMILIES = [
  "grpc_server_started_total",
  "grpc_server_handled_total",
  "grpc_server_msg_received_total",
  "grpc_server_msg_sent_total",
  "grpc_server_handling_seconds",
  "process_cpu_seconds_total",
  "process_open_fds",
  "process_max_fds",
  "process_virtual_memory_bytes",
  "process_resident_memory_bytes",
  "process_start_time_seconds",
];

/** containerd's per-task families of a running task, by cgroup version (metrics/cgroups/v1, v2). */
const TASK_FAMILIES = {
  v1: [
    "container_cpu_total_nanoseconds",
    "container_cpu_user_nanoseconds",
    "container_per_cpu_nanoseconds",
    "container_memory_usage_usage_bytes",
    "container_memory_usage_limit_bytes",
    "container_memory_rss_bytes",
    "container_memory_cache_bytes",
    "container_pids_current",
    "container_pids_limit",
  ],
  v2: [
    "container_cpu_usage_usec_microseconds",
    "container_memory_usage_bytes",
    "container_memory_usage_limit_bytes",
    "container_pids_current",
    "container_pids_limit",
  ],
};

async function scrape(port: number, accept?: string): Promise<{ text: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`, {
    headers: accept ? { accept } : {},
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return { text, type: res.headers.get("content-type") ?? "" };
}

/**
 * The whole text exposition, parsed twice: by parse-prometheus-text-format, which rejects any line
 * client_golang's parser would and gives each family's type, and by the strict parser below, which also
 * keeps labelled histograms apart (the npm parser folds every histogram of a family into one series).
 */
async function families(port: number): Promise<Map<string, Family>> {
  const { text, type } = await scrape(port);
  assert.equal(type, "text/plain; version=0.0.4; charset=utf-8");
  const parsed = parsePrometheus(text) as ParsedFamily[];
  const strict = parseExposition(text, "text");
  assert.deepEqual(parsed.map((f) => f.name).sort(), [...strict.keys()].sort());
  for (const f of parsed) {
    assert.equal(f.type.toLowerCase(), strict.get(f.name)!.type, `type of ${f.name}`);
    if (f.type !== "HISTOGRAM") assert.equal(f.metrics.length, strict.get(f.name)!.samples.length, f.name);
  }
  return strict;
}

/** The value of the first series of `name` with these labels; a histogram's by its `_count`. */
function value(
  fams: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = fams.get(name);
  const suffix = f?.type === "histogram" ? "_count" : "";
  const s = f?.samples.find((s) =>
    s.name === name + suffix && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  return s?.value;
}

Deno.test({
  name: "/v1/metrics serves containerd's families and Berth's, which move with a pull and a container's life",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const registry = await startRegistry();
    const fixtures = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
    const port = 20000 + Math.floor(Math.random() * 20000);
    const ns = `mt${crypto.randomUUID().slice(0, 8)}`;
    let daemon: TestDaemon | undefined;
    try {
      const pushed = await pushFixtures(registry, await buildFixtureImages(fixtures), { names: ["single"] });
      const image = pushed.single.reference;
      daemon = await startDaemon({
        config: `${testDaemonConfig}[metrics]\n  address = "127.0.0.1:${port}"\n  grpc_histogram = true\n`,
        env: { BERTH_SHIM_IDLE_MS: "0" },
      });
      const d = daemon;
      const ctr = async (args: string[]) => {
        const r = await runCtr(d.address, ns, args, 60_000);
        assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}`);
        return r.stdout;
      };

      await t.step("the whole output parses, with containerd's gRPC and process families", async () => {
        await ctr(["version"]);
        const fams = await families(port);
        for (const name of CONTAINERD_FAMILIES) assert.ok(fams.has(name), `no ${name}`);
        assert.equal(fams.get("grpc_server_handled_total")!.type, "counter");
        assert.equal(fams.get("grpc_server_handling_seconds")!.type, "histogram");
        const version = {
          grpc_service: "containerd.services.version.v1.Version",
          grpc_method: "Version",
          grpc_type: "unary",
        };
        assert.ok(value(fams, "grpc_server_started_total", version)! >= 1);
        assert.ok(value(fams, "grpc_server_handled_total", { ...version, grpc_code: "OK" })! >= 1);
        assert.ok(value(fams, "grpc_server_msg_received_total", version)! >= 1);
        // go-grpc-prometheus pre-registers every method with every code.
        assert.equal(
          value(fams, "grpc_server_handled_total", { grpc_method: "Delete", grpc_code: "DataLoss" }),
          0,
        );
        assert.ok(value(fams, "process_resident_memory_bytes")! > 1e6);
        assert.ok(value(fams, "berth_heap_used_bytes")! > 0);
        assert.equal(value(fams, "berth_image_pull_duration_seconds"), 0);
      });

      await t.step("a pull in the daemon is counted, with its bytes and duration", async () => {
        const r = await berth([
          "--address",
          d.address,
          "--namespace",
          ns,
          "ctr",
          "images",
          "pull",
          "--plain-http",
          image,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const fams = await families(port);
        assert.equal(value(fams, "berth_image_pulls_total", { outcome: "success" }), 1);
        assert.equal(value(fams, "berth_image_pull_duration_seconds"), 1);
        assert.ok(value(fams, "berth_image_pull_bytes_total")! > 1000);
        assert.equal(value(fams, "berth_images", { namespace: ns }), 1);
        assert.ok(value(fams, "berth_content_bytes", { namespace: ns })! > 1000);
        assert.ok(value(fams, "berth_content_store_bytes")! > 1000);
      });

      let memoryFamily = "";
      let before = 0;
      await t.step("a running task has containerd's container_* families and is counted", async () => {
        await ctr(["run", "-d", image, "m1", "sleep", "1000"]);
        const fams = await families(port);
        assert.equal(value(fams, "berth_tasks", { namespace: ns, status: "running" }), 1);
        assert.equal(value(fams, "berth_containers", { namespace: ns }), 1);
        assert.ok(value(fams, "berth_shims")! >= 1);
        const version = fams.has("container_memory_usage_usage_bytes") ? "v1" : "v2";
        for (const name of TASK_FAMILIES[version]) {
          assert.ok(
            value(fams, name, { container_id: "m1", namespace: ns }) !== undefined,
            `no ${name} for m1`,
          );
        }
        memoryFamily = version === "v1"
          ? "container_memory_usage_usage_bytes"
          : "container_memory_usage_bytes";
        before = value(fams, memoryFamily, { container_id: "m1", namespace: ns })!;
      });

      await t.step("container memory grows when the container allocates", async () => {
        // 64 MiB in the container's tmpfs /dev/shm is charged to its memory cgroup.
        await ctr([
          "task",
          "exec",
          "--exec-id",
          "fill",
          "m1",
          "sh",
          "-c",
          "head -c 67108864 /dev/zero > /dev/shm/fill",
        ]);
        const fams = await families(port);
        const after = value(fams, memoryFamily, { container_id: "m1", namespace: ns })!;
        assert.ok(after - before >= 60 * 2 ** 20, `${memoryFamily} went from ${before} to ${after}`);
      });

      await t.step("OpenMetrics is served when the Accept header asks for it", async () => {
        const { text, type } = await scrape(
          port,
          "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," +
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        );
        assert.equal(type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        const om = parseExposition(text, "openmetrics");
        assert.equal(om.get("grpc_server_started")?.type, "counter");
        assert.equal(om.get("grpc_server_handling_seconds")?.type, "histogram");
        assert.ok(om.has(memoryFamily));
      });

      await t.step("berth tasks metrics --format json prints what ctr prints; the table stays", async () => {
        // Paused, the task's counters hold still between the two reads, but for the memory cgroup's
        // usage, which the kernel's per-CPU charge caches may still settle by a few pages (seen in CI):
        // each pair of reads is taken again until one pair agrees.
        await ctr(["task", "pause", "m1"]);
        const flags = ["--address", d.address, "--namespace", ns, "ctr", "tasks", "metrics", "m1"];
        const agree = async (read: () => Promise<[string, string]>) => {
          let pair: [string, string] = ["", ""];
          for (let i = 0; i < 5; i++) {
            pair = await read();
            if (pair[0] === pair[1]) break;
          }
          assert.equal(pair[0], pair[1]);
        };
        await agree(async () => {
          const ours = await berth([...flags, "--format", "json"]);
          assert.equal(ours.code, 0, ours.stderr);
          return [ours.stdout, await ctr(["task", "metrics", "--format", "json", "m1"])];
        });
        // The first table's timestamp differs; the metric rows are the same but for the padding ctr's
        // tabwriter leaves at the end of each line.
        const rows = (out: string) => out.split("\n\n")[1]!.replace(/ +$/gm, "");
        await agree(
          async () => [rows((await berth(flags)).stdout), rows(await ctr(["task", "metrics", "m1"]))],
        );
        await ctr(["task", "resume", "m1"]);
      });

      await t.step("a stopped and removed task leaves the counts and its series", async () => {
        await ctr(["task", "kill", "-s", "SIGKILL", "m1"]);
        await waitFor(async () => (await runCtr(d.address, ns, ["task", "ls"])).stdout.includes("STOPPED"));
        let fams = await families(port);
        assert.equal(value(fams, "berth_tasks", { namespace: ns, status: "stopped" }), 1);
        assert.equal(value(fams, memoryFamily, { container_id: "m1", namespace: ns }), undefined);
        await ctr(["task", "rm", "m1"]);
        await ctr(["container", "rm", "m1"]);
        fams = await families(port);
        assert.equal(value(fams, "berth_tasks", { namespace: ns }), undefined);
        assert.equal(value(fams, "berth_containers", { namespace: ns }), undefined);
      });
    } finally {
      if (daemon) {
        await runCtr(daemon.address, ns, ["task", "kill", "-s", "SIGKILL", "m1"]).catch(() => {});
        await runCtr(daemon.address, ns, ["task", "rm", "-f", "m1"]).catch(() => {});
        await runCtr(daemon.address, ns, ["container", "rm", "m1"]).catch(() => {});
        await daemon.stop();
        await Deno.remove(daemon.dir, { recursive: true }).catch(() => {});
      }
      await registry.stop();
      await Deno.remove(fixtures, { recursive: true });
      await Deno.remove(`/run/containerd/runc/${ns}`, { recursive: true }).catch(() => {});
      await removeNamespaceCgroups(ns);
    }
  },
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("Not within 10 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Family {
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/**
 * Prometheus text 0.0.4 or OpenMetrics 1.0, strictly: for OpenMetrics `# EOF` last and once, counter
 * families named without `_total`; every sample under its family's HELP and TYPE with the suffixes its
 * type allows (counters `_total`, histograms `_bucket` with `le`, `_sum`, `_count`), label and number
 * syntax, and no family or series twice.
 */
function parseExposition(text: string, format: "text" | "openmetrics"): Map<string, Family> {
  const om = format === "openmetrics";
  if (om) {
    assert.ok(text.endsWith("# EOF\n"), "does not end with # EOF");
    text = text.slice(0, -"# EOF".length - 1);
  }
  const lines = text.split("\n").slice(0, -1);
  const fams = new Map<string, Family>();
  const series = new Set<string>();
  const suffixes: Record<string, string[]> = om
    ? {
      counter: ["_total", "_created"],
      gauge: [""],
      unknown: [""],
      histogram: ["_bucket", "_sum", "_count"],
    }
    : { counter: [""], gauge: [""], untyped: [""], histogram: ["_bucket", "_sum", "_count"] };
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const number = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
  const types = om ? "counter|gauge|histogram|unknown" : "counter|gauge|histogram|untyped";
  let current: { name: string; fam: Family } | undefined;
  for (const line of lines) {
    const help = new RegExp(`^# HELP (${name}) (.*)$`).exec(line);
    if (help) {
      assert.ok(!fams.has(help[1]!), `family ${help[1]} twice`);
      current = { name: help[1]!, fam: { type: "", samples: [] } };
      fams.set(help[1]!, current.fam);
      continue;
    }
    const type = new RegExp(`^# TYPE (${name}) (${types})$`).exec(line);
    if (type) {
      assert.equal(type[1], current?.name, `TYPE of ${type[1]} not after its HELP`);
      current!.fam.type = type[2]!;
      if (om && type[2] === "counter") {
        assert.ok(!type[1]!.endsWith("_total"), `counter ${type[1]} named _total`);
      }
      continue;
    }
    assert.ok(!line.startsWith("#"), `bad comment line: ${line}`);
    const m = new RegExp(`^(${name})(\\{(.*)\\})? (\\S+)$`).exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    const [, sample, , labelText = "", val] = m;
    assert.ok(current?.fam.type, `sample before its family's TYPE: ${line}`);
    const suffix = sample!.slice(current.name.length);
    assert.ok(
      sample!.startsWith(current.name) && suffixes[current.fam.type]!.includes(suffix),
      `sample ${sample} does not belong to ${current.fam.type} ${current.name}`,
    );
    assert.match(val!, number, `bad value in ${line}`);
    if (om) assert.match(val!, /[.eE]|Inf|NaN/, `OpenMetrics float without a point: ${line}`);
    const pairs = labelText === "" ? [] : labelText.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
    assert.equal(pairs.join(","), labelText, `bad labels in ${line}`);
    const labels = Object.fromEntries(pairs.map((p) => {
      const eq = p.indexOf("=");
      return [p.slice(0, eq), JSON.parse(p.slice(eq + 1))];
    }));
    if (suffix === "_bucket") assert.match(labels.le ?? "", number, `bucket without le: ${line}`);
    const key = `${sample}{${pairs.sort().join(",")}}`;
    assert.ok(!series.has(key), `series ${key} twice`);
    series.add(key);
    current.fam.samples.push({ name: sample!, labels, value: Number(val!.replace(/^\+/, "")) });
  }
  return fams;
}
