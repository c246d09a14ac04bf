/**
 * Ids a path is built from are checked with containerd's identifier rules before the path is built
 * (issue 14 item 6): through Debian's `ctr` against a Berth daemon, and against Berth's shim driven
 * directly over ttrpc, as a daemon that does not check them would drive it.
 */
import assert from "node:assert/strict";
import { dirname, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Task } from "../src/gen/runtime/task/v2/shim_pb.ts";
import {
  Code,
  createTtrpcClient,
  NAMESPACE_METADATA_KEY,
  TtrpcClient,
  TtrpcError,
} from "../src/ttrpc/mod.ts";
import { setup, teardown } from "./helpers/tasks.ts";

const BAD = "../../../../zz";
const containerdWording =
  `invalid exec id ${BAD}: identifier "${BAD}" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`;

/** Names created in `dir` while `fn` runs (a pid file runc writes is removed again at once). */
async function createdDuring(dir: string, fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const watcher = Deno.watchFs(dir, { recursive: false });
  const reading = (async () => {
    for await (const e of watcher) {
      if (e.kind === "create" || e.kind === "modify") seen.push(...e.paths);
    }
  })();
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    watcher.close();
    await reading;
  }
  return seen.filter((p) => p.includes("zz"));
}

Deno.test({
  name: "An exec id that is not a containerd identifier is refused by the daemon and by Berth's shim",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth");
    try {
      const run = await env.ctr(["run", "-d", env.image, "x1", "sleep", "1000"]);
      assert.equal(run.code, 0, run.stderr);
      const bundle = `${env.daemon.state}/io.containerd.runtime.v2.task/${env.ns}/x1`;
      const outside = dirname(resolve(bundle, `${BAD}.pid`));

      await t.step(
        "ctr t exec --exec-id ../../../../zz fails with containerd's InvalidArgument",
        async () => {
          let out = { code: 0, stdout: "", stderr: "" };
          const created = await createdDuring(outside, async () => {
            out = await env.ctr(["task", "exec", "--exec-id", BAD, "x1", "true"]);
          });
          assert.notEqual(out.code, 0);
          assert.ok(out.stderr.includes(containerdWording), out.stderr);
          assert.match(out.stderr, /invalid argument/);
          assert.deepEqual(created, []);
        },
      );

      await t.step("Berth's shim refuses it over ttrpc before runc writes a pid file", async () => {
        const address = (await Deno.readTextFile(`${bundle}/address`)).trim();
        const client = await TtrpcClient.connect(address, {
          metadata: { [NAMESPACE_METADATA_KEY]: env.ns },
          timeoutMs: 10_000,
        });
        try {
          const task = createTtrpcClient(Task, client);
          const spec = JSON.stringify({
            args: ["true"],
            cwd: "/",
            env: ["PATH=/bin"],
            user: { uid: 0, gid: 0 },
          });
          let err: unknown;
          const created = await createdDuring(outside, async () => {
            try {
              await task.exec({
                id: "x1",
                execId: BAD,
                spec: create(AnySchema, {
                  typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
                  value: new TextEncoder().encode(spec),
                }),
              });
              await task.start({ id: "x1", execId: BAD });
            } catch (e) {
              err = e;
            }
          });
          assert.ok(err instanceof TtrpcError, String(err));
          assert.equal(err.code, Code.invalidArgument);
          assert.ok(err.message.includes(containerdWording), err.message);
          assert.deepEqual(created, []);
        } finally {
          client.close();
        }
      });

      await t.step("a valid exec id still runs", async () => {
        const ok = await env.ctr(["task", "exec", "--exec-id", "e.1_ok-2", "x1", "true"]);
        assert.equal(ok.code, 0, ok.stderr);
      });
    } finally {
      await teardown(env);
    }
  },
});
