import assert from "node:assert/strict";
import { createLogger, parseLogLevel, stderrIsJournal } from "./log.ts";

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

Deno.test("journal logs start each line with its syslog priority, in text and JSON", () => {
  for (const format of ["text", "json"] as const) {
    const lines: string[] = [];
    const log = createLogger({ level: "trace", format, journal: true, write: (l) => lines.push(l) });
    log.trace("t");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    assert.deepEqual(lines.map((l) => l.slice(0, 3)), ["<7>", "<7>", "<6>", "<4>", "<3>"]);
    // journald strips the prefix: what is left is the line as it would be without the journal.
    if (format === "json") { for (const l of lines) JSON.parse(l.slice(3)); }
  }
});

Deno.test("A field JSON cannot hold costs that field, never the line", () => {
  for (const format of ["text", "json"] as const) {
    const lines: string[] = [];
    const log = createLogger({ format, write: (l) => lines.push(l) });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    log.info("odd fields", { big: 12n, cycle, "a key": "v" });
    assert.equal(lines.length, 1);
    if (format === "json") {
      const obj = JSON.parse(lines[0]!);
      assert.equal(obj.big, "12");
      assert.match(obj.cycle, /cannot serialise/);
    } else {
      assert.match(lines[0]!, / big=12 cycle="\[cannot serialise: .*"a key"=v$/);
    }
  }
});

Deno.test("stderrIsJournal compares JOURNAL_STREAM with stderr's device and inode", () => {
  const st = Deno.statSync("/proc/self/fd/2");
  assert.equal(stderrIsJournal(`${st.dev}:${st.ino}`), true);
  assert.equal(stderrIsJournal(`${st.dev}:${st.ino! + 1}`), false);
  assert.equal(stderrIsJournal(""), false);
  assert.equal(stderrIsJournal("garbage"), false);
});
