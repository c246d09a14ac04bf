import assert from "node:assert/strict";
import { formatBytes, ProgressView } from "./progress.ts";

Deno.test("ProgressView redraws one line per descriptor in place on a terminal", () => {
  let out = "";
  let now = 0;
  const view = new ProgressView({ tty: true, write: (t) => (out += t), now: () => now });
  const ref = "layer-sha256:" + "a".repeat(64);
  view.update([{ ref, status: "downloading", offset: 1 << 20, total: 4 << 20 }]);
  now = 1000;
  view.update([{ ref, status: "downloading", offset: 2 << 20, total: 4 << 20 }]);
  assert.ok(out.includes("\x1b[2A"), "the second draw moves up over the first (line + elapsed)");
  assert.match(out, new RegExp(`${ref}: downloading +\\|\\+{20}-{20}\\| 2\\.0 MiB/4\\.0 MiB`));
  assert.match(out, /elapsed: 1\.0 s/);
});

Deno.test("ProgressView prints a plain line per change of state when not on a terminal", () => {
  const lines: string[] = [];
  const view = new ProgressView({ tty: false, write: (t) => lines.push(t.trimEnd()) });
  const ref = "config-sha256:" + "b".repeat(64);
  view.update([{ ref, status: "downloading", offset: 10, total: 100, resumedFrom: 10 }]);
  view.update([{ ref, status: "downloading", offset: 50, total: 100, resumedFrom: 10 }]);
  view.update([{ ref, status: "done", offset: 100, total: 100, resumedFrom: 10 }]);
  assert.deepEqual(lines, [`${ref}: downloading (resuming at 10.0 B of 100.0 B)`, `${ref}: done 100.0 B`]);
  assert.equal(formatBytes(3.4 * 1024 * 1024), "3.4 MiB");
});
