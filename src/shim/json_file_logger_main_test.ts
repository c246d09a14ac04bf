import assert from "node:assert/strict";
import { fdSyscalls } from "../../ffi/fd.ts";
import { jsonFileLoggerMain } from "./json_file_logger_main.ts";

const enc = new TextEncoder();
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sys = fdSyscalls();

Deno.test("jsonFileLoggerMain() closes its ready pipe, then logs fds 3 and 4 until both end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-jsonlogger-" });
  const [outR, outW] = sys.pipe();
  const [errR, errW] = sys.pipe();
  const [readyR, readyW] = sys.pipe();
  try {
    const path = `${dir}/c-json.log`;
    const running = jsonFileLoggerMain(
      ["_BERTH_INTERNAL_LOGGING", "json-file", "path", path, "max-size", "1k", "max-file", "2"],
      { fds: { stdout: outR, stderr: errR, ready: readyW } },
    );
    // Ready once fd 5's write end is closed: the read end sees its end.
    assert.equal(await sys.read(readyR, new Uint8Array(1)), 0);
    sys.writeSync(outW, enc.encode("out\n"));
    sys.writeSync(errW, enc.encode("err\n"));
    for (let i = 0; i < 40; i++) sys.writeSync(errW, enc.encode(`e${i}\n`));
    sys.close(errW);
    // The two pipes are copied concurrently: only once stderr's last line is in the file is the
    // unterminated stdout line certainly the last entry (under load its end could come first).
    // The file may not exist yet, or be mid-rotation (renamed to .1, the new one not made): read both.
    const logged = async () =>
      (await Promise.all([path, `${path}.1`].map((p) => Deno.readTextFile(p).catch(() => "")))).join("");
    for (let waited = 0; !(await logged()).includes('"e39\\n"'); waited += 5) {
      assert.ok(waited < 10_000, "stderr's lines reached the log within 10 s");
      await delay(5);
    }
    sys.writeSync(outW, enc.encode("last words"));
    sys.close(outW);
    assert.equal(await running, 0);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["c-json.log", "c-json.log.1"]);
    const live = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(live.at(-1), { ...live.at(-1), stream: "stdout", log: "last words" });
  } finally {
    for (const fd of [readyR]) sys.close(fd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jsonFileLoggerMain() fails with code 2 on arguments that are not a json-file log", async () => {
  assert.equal(await jsonFileLoggerMain(["out", "/x"], { fds: { stdout: -1, stderr: -1, ready: -1 } }), 2);
});

Deno.test("jsonFileLoggerMain() on SIGTERM still logs what waits in the pipes, then ends within its drain time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-jsonlogger-" });
  const [outR, outW] = sys.pipe();
  const [errR, errW] = sys.pipe();
  const [readyR, readyW] = sys.pipe();
  const abort = new AbortController();
  try {
    const path = `${dir}/c-json.log`;
    const running = jsonFileLoggerMain(["_BERTH_INTERNAL_LOGGING", "json-file", "path", path], {
      fds: { stdout: outR, stderr: errR, ready: readyW },
      signal: abort.signal,
      drainMs: 300,
    });
    assert.equal(await sys.read(readyR, new Uint8Array(1)), 0);
    // containerd's shim: the last output is written, the shim's ends closed, then SIGTERM.
    sys.writeSync(outW, enc.encode("out1\n"));
    sys.close(outW);
    abort.abort();
    // stderr still has a writer (a process that outlives the task): the drain time ends its copy.
    sys.writeSync(errW, enc.encode("err1\n"));
    const started = Date.now();
    assert.equal(await running, 0);
    assert.ok(Date.now() - started < 3_000, "the logger ended within its drain time");
    const logged = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(logged.map((e) => [e.stream, e.log]).sort(), [["stderr", "err1\n"], [
      "stdout",
      "out1\n",
    ]]);
  } finally {
    sys.close(errW);
    sys.close(readyR);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts runs the logging binary whichever pair comes first, as containerd's shim orders them at random", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-jsonlogger-" });
  try {
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const path = `${dir}/c-json.log`;
    // containerd's NewBinaryCmd: the query's pairs in Go map order; the shim's pipes on fds 3, 4 and 5.
    const args = ["max-file", "2", "path", path, "_BERTH_INTERNAL_LOGGING", "json-file", "max-size", "1m"];
    const script = `printf 'from the container\\n' | "$0" run -A --quiet "$@" 3<&0 4</dev/null 5>/dev/null`;
    const out = await new Deno.Command("sh", {
      args: ["-c", script, Deno.execPath(), main, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const logged = JSON.parse((await Deno.readTextFile(path)).trim());
    assert.deepEqual([logged.stream, logged.log], ["stdout", "from the container\n"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
