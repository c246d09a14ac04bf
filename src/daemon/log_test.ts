import assert from "node:assert/strict";
import { createLogger, parseLogLevel } from "./log.ts";

Deno.test("text logs are containerd-like logfmt lines, quoting where needed", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) }).with({ id: "content" });
  log.info("loading plugin", { type: "io.containerd.content.v1", n: 3 });
  assert.match(
    lines[0]!,
    /^time="[^"]+" level=info msg="loading plugin" id=content type=io\.containerd\.content\.v1 n=3$/,
  );
});

Deno.test("json logs are one object per line and levels below the threshold are dropped", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "warn", format: "json", write: (l) => lines.push(l) });
  log.info("hidden");
  log.error("failed", { error: new Error("boom") });
  assert.equal(lines.length, 1);
  const obj = JSON.parse(lines[0]!);
  assert.equal(obj.level, "error");
  assert.equal(obj.msg, "failed");
  assert.equal(obj.error, "boom");
});

Deno.test("parseLogLevel accepts containerd's names and rejects others", () => {
  assert.equal(parseLogLevel("warning"), "warn");
  assert.equal(parseLogLevel("DEBUG"), "debug");
  assert.throws(() => parseLogLevel("chatty"), /Unknown log level/);
});
