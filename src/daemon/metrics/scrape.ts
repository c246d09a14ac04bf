/**
 * One scrape of /v1/metrics: containerd's families (go-grpc-prometheus' grpc_server_*, the process
 * collector, the per-task container_* cgroup families) and Berth's own (berth_*), gathered when asked and
 * written in the format the Accept header chose. Imported at the first scrape only.
 *
 * Per-task metrics cost two calls per task to its shim (Stats and State, over the connection the daemon
 * already holds), made at most TASK_CONCURRENCY at a time with a deadline each, so a scrape of many tasks
 * neither floods the shims nor holds the event loop: every call is asynchronous, and decoding one task's
 * message is a few microseconds. Everything else is one aggregate SQL query per table.
 */
import type { ShimTask } from "../../core/runtime/mod.ts";
import { metadataStats } from "../../core/metadata/stats.ts";
import { PULL_SECONDS_BUCKETS } from "../../core/transfer/mod.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { version } from "../../version.ts";
import { CgroupFamilies } from "./cgroups.ts";
import { type Family, negotiate, render, type Sample } from "./exposition.ts";
import { histogramSamples } from "./histogram.ts";
import { heapFamilies, processFamilies } from "./process.ts";
import type { Counted, GrpcSeries, ScrapeSources } from "./sources.ts";

/** Shim calls in flight at once during a scrape. */
const TASK_CONCURRENCY = 16;
/** A shim that does not answer within this is left out of this scrape. */
const TASK_TIMEOUT_MS = 2000;

export async function scrape(
  counted: Counted,
  sources: ScrapeSources | undefined,
  accept: string | null,
): Promise<{ body: string; contentType: string }> {
  const { format, contentType } = negotiate(accept);
  const families: Family[] = [
    ...grpcFamilies(counted.grpc),
    ...await processFamilies(),
    ...heapFamilies(),
    {
      name: "berth_eventloop_lag_seconds",
      help:
        "How late a 500 ms timer fires: the event loop's lag (Berth's analogue of Go's scheduler latency).",
      type: "histogram",
      samples: counted.lag.samples(),
    },
    gauge("berth_build_info", "Berth's version and the Deno and V8 it runs on (Go's go_info).", [
      [{ version, deno: Deno.version.deno, v8: Deno.version.v8 }, 1],
    ]),
  ];
  if (sources) families.push(...await daemonFamilies(sources));
  return { body: render(families, format), contentType };
}

const GRPC_TYPES = {
  unary: "unary",
  client_streaming: "client_stream",
  server_streaming: "server_stream",
  bidi_streaming: "bidi_stream",
} as const;

/** grpc-go's codes.Code.String(), by code number. */
const CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
];

/** go-grpc-prometheus' server metrics, with its names, help texts and labels. */
function grpcFamilies(grpc: ReadonlyMap<string, GrpcSeries>): Family[] {
  const counter = (name: string, help: string): Family => ({ name, help, type: "counter", samples: [] });
  const started = counter("grpc_server_started_total", "Total number of RPCs started on the server.");
  const handled = counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
  );
  const received = counter(
    "grpc_server_msg_received_total",
    "Total number of RPC stream messages received on the server.",
  );
  const sent = counter(
    "grpc_server_msg_sent_total",
    "Total number of gRPC stream messages sent by the server.",
  );
  const seconds: Family = {
    name: "grpc_server_handling_seconds",
    help:
      "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    type: "histogram",
    samples: [],
  };
  for (const s of grpc.values()) {
    const labels = {
      grpc_type: GRPC_TYPES[s.call.kind],
      grpc_service: s.call.service,
      grpc_method: s.call.method,
    };
    started.samples.push({ labels, value: s.started });
    received.samples.push({ labels, value: s.received });
    sent.samples.push({ labels, value: s.sent });
    CODE_NAMES.forEach((code, i) =>
      handled.samples.push({ labels: { ...labels, grpc_code: code }, value: s.handled[i] ?? 0 })
    );
    if (s.seconds) seconds.samples.push(...s.seconds.samples(labels));
  }
  return [started, handled, received, sent, seconds];
}

/** What the daemon holds: tasks and their cgroups, shims, metadata, pulls, GC, CRI pods. */
async function daemonFamilies(sources: ScrapeSources): Promise<Family[]> {
  const t0 = performance.now();
  const tasks = sources.tasks
    ? await collectTasks(sources.tasks.all())
    : { cgroups: new CgroupFamilies(), states: [], failed: 0 };
  const collectSeconds = (performance.now() - t0) / 1000;
  const meta = metadataStats(sources.db);
  const byTask = new Map(tasks.states.map((s) => [`${s.namespace}/${s.id}`, s.status]));
  const taskCounts = new Map<string, { namespace: string; status: string; n: number }>();
  for (const s of tasks.states) {
    const k = `${s.namespace}/${s.status}`;
    const c = taskCounts.get(k) ?? { namespace: s.namespace, status: s.status, n: 0 };
    c.n++;
    taskCounts.set(k, c);
  }
  const shims = sources.tasks?.shims() ?? [];
  const out: Family[] = [
    ...tasks.cgroups.families,
    gauge(
      "berth_containers",
      "Containers in the metadata, by namespace.",
      meta.containers.map((c) => [{ namespace: c.namespace }, c.count]),
    ),
    gauge(
      "berth_images",
      "Images in the metadata, by namespace.",
      meta.images.map((c) => [{ namespace: c.namespace }, c.count]),
    ),
    gauge(
      "berth_tasks",
      "Tasks by namespace and status, as their shims report it (unknown: the shim did not answer).",
      [...taskCounts.values()].map((c) => [{ namespace: c.namespace, status: c.status }, c.n]),
    ),
    gauge("berth_shims", "Shim processes the daemon is connected to.", [[{}, shims.length]]),
    gauge(
      "berth_shim_tasks",
      "Tasks each shim serves, by the shim's socket address.",
      shims.map((s) => [{ shim: s.address }, s.tasks]),
    ),
    gauge(
      "berth_content_blobs",
      "Blobs in the content store, by namespace (a shared blob counts in each).",
      meta.content.map((c) => [{ namespace: c.namespace }, c.blobs]),
    ),
    gauge(
      "berth_content_bytes",
      "Bytes of the blobs in the content store, by namespace.",
      meta.content.map((c) => [{ namespace: c.namespace }, c.bytes]),
    ),
    gauge("berth_content_store_blobs", "Distinct blobs on disk in the content store.", [[
      {},
      meta.contentStore.blobs,
    ]]),
    gauge("berth_content_store_bytes", "Bytes of the distinct blobs on disk in the content store.", [[
      {},
      meta.contentStore.bytes,
    ]]),
    gauge(
      "berth_snapshots",
      "Snapshots by snapshotter and kind.",
      meta.snapshots.map((s) => [{ snapshotter: s.snapshotter, kind: s.kind }, s.count]),
    ),
    gauge(
      "berth_snapshot_bytes",
      "Bytes of snapshots as recorded when committed, by snapshotter and kind (active ones count 0 until committed).",
      meta.snapshots.map((s) => [{ snapshotter: s.snapshotter, kind: s.kind }, s.bytes]),
    ),
    gauge(
      "berth_metrics_task_collect_seconds",
      "Time the last scrape spent collecting per-task metrics from the shims.",
      [[{}, collectSeconds]],
    ),
    gauge("berth_metrics_task_errors", "Tasks whose shim did not answer in the last scrape.", [[
      {},
      tasks.failed,
    ]]),
  ];
  if (sources.cri) {
    let ready = 0;
    for (const s of meta.sandboxes) if (byTask.get(`${s.namespace}/${s.id}`) === "running") ready++;
    out.push(gauge("berth_cri_pods", "CRI pod sandboxes, by state (ready: the sandbox's task runs).", [
      [{ state: "ready" }, ready],
      [{ state: "notready" }, meta.sandboxes.length - ready],
    ]));
  }
  if (sources.pulls) out.push(...pullFamilies(sources.pulls));
  if (sources.gc) {
    const g = sources.gc.totals;
    out.push(
      counter("berth_gc_collections_total", "Garbage collections run.", g.collections),
      counter("berth_gc_failures_total", "Garbage collections that failed.", g.failures),
      {
        name: "berth_gc_removed_total",
        help: "Objects garbage collection removed, by type.",
        type: "counter",
        samples: [
          { labels: { type: "content" }, value: g.removedContent },
          { labels: { type: "snapshots" }, value: g.removedSnapshots },
          { labels: { type: "leases" }, value: g.expiredLeases },
        ],
      },
      counter(
        "berth_gc_pause_seconds_total",
        "Time writers waited on the metadata database for collections.",
        g.pauseMs / 1000,
      ),
      counter(
        "berth_gc_seconds_total",
        "Time garbage collections took, folder removal included.",
        g.ms / 1000,
      ),
    );
  }
  return out;
}

function pullFamilies(p: NonNullable<ScrapeSources["pulls"]>): Family[] {
  return [
    {
      name: "berth_image_pulls_total",
      help: "Image pulls the daemon ran (Transfer service and CRI), by outcome.",
      type: "counter",
      samples: [
        { labels: { outcome: "success" }, value: p.succeeded },
        { labels: { outcome: "failure" }, value: p.failed },
      ],
    },
    counter("berth_image_pull_bytes_total", "Bytes image pulls fetched from registries.", p.bytes),
    {
      name: "berth_image_pull_duration_seconds",
      help: "Time image pulls took, unpacking included.",
      type: "histogram",
      samples: histogramSamples({}, PULL_SECONDS_BUCKETS, p.buckets, p.seconds),
    },
  ];
}

interface TaskState {
  readonly namespace: string;
  readonly id: string;
  readonly status: string;
}

const STATUS_NAMES: Record<number, string> = {
  [Status.UNKNOWN]: "unknown",
  [Status.CREATED]: "created",
  [Status.RUNNING]: "running",
  [Status.STOPPED]: "stopped",
  [Status.PAUSED]: "paused",
  [Status.PAUSING]: "pausing",
};

/** Asks every task's shim for its status and cgroup metrics, TASK_CONCURRENCY at a time. */
async function collectTasks(
  all: readonly ShimTask[],
): Promise<{ cgroups: CgroupFamilies; states: TaskState[]; failed: number }> {
  const cgroups = new CgroupFamilies();
  const states: TaskState[] = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const t = all[next++]!;
      const opts = { timeoutMs: TASK_TIMEOUT_MS };
      const [state, stats] = await Promise.allSettled([t.state("", opts), t.stats(opts)]);
      const status = state.status === "fulfilled" ? STATUS_NAMES[state.value.status] ?? "unknown" : "unknown";
      states.push({ namespace: t.namespace, id: t.id, status });
      if (state.status === "rejected") failed++;
      // A stopped task's cgroup is gone: its shim answers Stats with an error, and it has no series.
      if (stats.status === "fulfilled" && stats.value) cgroups.add(t.id, t.namespace, stats.value);
    }
  };
  await Promise.all(Array.from({ length: Math.min(TASK_CONCURRENCY, all.length) }, worker));
  return { cgroups, states, failed };
}

function gauge(name: string, help: string, values: [Record<string, string>, number][]): Family {
  const samples: Sample[] = values.map(([labels, value]) => ({ labels, value }));
  return { name, help, type: "gauge", samples };
}

function counter(name: string, help: string, value: number): Family {
  return { name, help, type: "counter", samples: [{ labels: {}, value }] };
}
