/** The house rules for imports (scripts/import_graph.ts): no circles, nothing pointing up a floor. */
import assert from "node:assert/strict";
import { allowed, areaOf, check, circles } from "../scripts/import_graph.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("No two files of src/ and ffi/ import each other, directly or round a circle", () => {
  const report = check(root);
  assert.ok(report.files > 100, `only ${report.files} files read`);
  assert.deepEqual(report.circles, [], report.circles.map((c) => c.join(" ⇄ ")).join("\n"));
});

Deno.test("Every import of src/ and ffi/ points to its own floor or a lower one", () => {
  const report = check(root);
  assert.deepEqual(
    report.upward.map((e) => `${e.from} → ${e.to}`),
    [],
    "move the shared piece down, or pass it in",
  );
});

Deno.test("The import checker finds circles and upward arrows when there are some", () => {
  const graph = new Map([
    ["src/core/a.ts", new Set(["src/core/b.ts"])],
    ["src/core/b.ts", new Set(["src/core/a.ts"])],
    ["src/core/c.ts", new Set<string>()],
  ]);
  assert.deepEqual(circles(graph), [["src/core/a.ts", "src/core/b.ts"]]);
  assert.equal(areaOf("src/core/runtime/task.ts"), "core");
  assert.equal(areaOf("ffi/fd.ts"), "ffi");
  assert.equal(allowed("src/core/runtime/task.ts", "src/shim/main.ts"), false);
  assert.equal(allowed("src/shim/main.ts", "src/core/runtime/task.ts"), true);
  assert.equal(allowed("src/cli/main.ts", "src/core/mount/mod.ts"), false);
  assert.equal(allowed("src/cli/host/mount.ts", "src/core/mount/mod.ts"), true);
  assert.equal(allowed("ffi/process.ts", "src/base/errors.ts"), false);
  assert.equal(allowed("src/docker/hook.ts", "src/core/cni/mod.ts"), true);
  assert.equal(allowed("src/docker/hook.ts", "src/core/runtime/task.ts"), false);
  assert.equal(allowed("src/cli/commands/ps.ts", "src/docker/names.ts"), true);
});
