import assert from "node:assert/strict";
import {
  formatJsonLogLine,
  jsonFileConfig,
  JsonFileWriter,
  type JsonLogEntry,
  MAX_LINE_BYTES,
  parseLogSize,
  readJsonLog,
} from "./json_file.ts";

const enc = new TextEncoder();

/** A clock that ticks one microsecond and a bit per reading, from 2026-12-07T04:05:11Z. */
function scriptedClock(): () => bigint {
  let t = 1796616311_000_000_000n;
  return () => t += 1_000_123n;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-jsonlog-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function lines(text: string): JsonLogEntry[] {
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

async function collect(it: AsyncIterable<JsonLogEntry>): Promise<JsonLogEntry[]> {
  const out: JsonLogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

Deno.test("parseLogSize() reads docker's sizes with binary units", () => {
  assert.equal(parseLogSize("1024"), 1024);
  assert.equal(parseLogSize("10k"), 10240);
  assert.equal(parseLogSize("10m"), 10 * 1024 * 1024);
  assert.equal(parseLogSize("1.5g"), 1.5 * 1024 ** 3);
  assert.equal(parseLogSize("2MB"), 2 * 1024 * 1024);
  assert.equal(parseLogSize("2MiB"), 2 * 1024 * 1024);
  assert.throws(() => parseLogSize("ten"), /Log size "ten" is not a size/);
});

Deno.test("jsonFileConfig() reads a log URI's query given as arguments, and ignores other loggers", () => {
  assert.deepEqual(
    jsonFileConfig([
      "_BERTH_INTERNAL_LOGGING",
      "json-file",
      "path",
      "/l/c-json.log",
      "max-size",
      "10k",
      "max-file",
      "3",
    ]),
    { path: "/l/c-json.log", maxSize: 10240, maxFile: 3 },
  );
  assert.deepEqual(jsonFileConfig(["_BERTH_INTERNAL_LOGGING", "json-file", "path", "/l"]), {
    path: "/l",
    maxSize: 0,
    maxFile: 1,
  });
  assert.equal(jsonFileConfig(["out", "/x"]), undefined);
  assert.throws(() => jsonFileConfig(["_BERTH_INTERNAL_LOGGING", "journald"]), /Log driver "journald"/);
  assert.throws(
    () => jsonFileConfig(["_BERTH_INTERNAL_LOGGING", "json-file", "path", "rel"]),
    /not absolute/,
  );
  assert.throws(
    () => jsonFileConfig(["_BERTH_INTERNAL_LOGGING", "json-file", "path", "/l", "max-file", "0"]),
    /max-file "0"/,
  );
});

Deno.test("formatJsonLogLine() writes docker's field order and Go's escapes", () => {
  assert.equal(
    formatJsonLogLine({ log: 'a<b>&"c"\t\n', stream: "stderr", time: "2026-12-07T04:05:11.123456789Z" }),
    '{"log":"a\\u003cb\\u003e\\u0026\\"c\\"\\t\\n","stream":"stderr","time":"2026-12-07T04:05:11.123456789Z"}\n',
  );
});

Deno.test("JsonFileWriter cuts each stream into lines, keeps partial lines until they end, and stamps RFC3339Nano UTC", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/sub/c-json.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 0, maxFile: 1 }, { clock: scriptedClock() });
    w.write("stdout", enc.encode("one\ntw"));
    w.write("stderr", enc.encode("err1\n"));
    w.write("stdout", enc.encode("o\nthree"));
    await w.flushed();
    const mid = lines(await Deno.readTextFile(path));
    assert.deepEqual(mid.map((e) => [e.stream, e.log]), [["stdout", "one\n"], ["stderr", "err1\n"], [
      "stdout",
      "two\n",
    ]]);
    for (const e of mid) assert.match(e.time, /^2026-12-07T04:05:11\.\d{1,9}Z$/);
    assert.equal(mid[0]!.time, "2026-12-07T04:05:11.001000123Z");
    await w.close();
    const all = lines(await Deno.readTextFile(path));
    assert.deepEqual(all.at(-1)?.log, "three");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
  });
});

Deno.test("JsonFileWriter cuts a line over 16 KiB into pieces, never inside a UTF-8 character", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 0, maxFile: 1 });
    const long = "x".repeat(MAX_LINE_BYTES - 1) + "é" + "y".repeat(100) + "\n";
    for (let i = 0; i < long.length; i += 1000) w.write("stdout", enc.encode(long.slice(i, i + 1000)));
    await w.close();
    const got = lines(await Deno.readTextFile(path));
    assert.equal(got.length, 2);
    assert.equal(got[0]!.log, "x".repeat(MAX_LINE_BYTES - 1));
    assert.equal(got[1]!.log, "é" + "y".repeat(100) + "\n");
  });
});

Deno.test("JsonFileWriter rotates at max-size and keeps at most max-file files, newest as .1", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 500, maxFile: 3 });
    for (let i = 0; i < 40; i++) w.write("stdout", enc.encode(`line ${String(i).padStart(2, "0")}\n`));
    await w.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["c.log", "c.log.1", "c.log.2"]);
    const sizes = names.map((n) => Deno.statSync(`${dir}/${n}`).size);
    const lineLen = formatJsonLogLine({ log: "line 00\n", stream: "stdout", time: "x" }).length;
    for (const s of sizes) assert.ok(s < 500 + lineLen + 40, `${sizes}`);
    // Oldest first across the files, ending with the last line.
    const read = await collect(readJsonLog(path));
    const nums = read.map((e) => Number(e.log.slice(5, 7)));
    assert.equal(nums.at(-1), 39);
    assert.deepEqual(nums, [...nums].sort((a, b) => a - b));
    assert.equal(nums.length, lines(names.map((n) => Deno.readTextFileSync(`${dir}/${n}`)).join("")).length);
  });
});

Deno.test("JsonFileWriter with max-file 1 truncates the live file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 200, maxFile: 1 });
    for (let i = 0; i < 20; i++) w.write("stdout", enc.encode(`line ${i}\n`));
    await w.close();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["c.log"]);
    assert.ok(Deno.statSync(path).size < 400);
    assert.equal((await collect(readJsonLog(path))).at(-1)?.log, "line 19\n");
  });
});

Deno.test("JsonFileWriter ends a torn line left by a killed writer before appending", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    await Deno.writeTextFile(
      path,
      formatJsonLogLine({ log: "a\n", stream: "stdout", time: "t" }) + '{"log":"tor',
    );
    const w = await JsonFileWriter.open({ path, maxSize: 0, maxFile: 1 });
    w.write("stdout", enc.encode("b\n"));
    await w.close();
    assert.deepEqual((await collect(readJsonLog(path))).map((e) => e.log), ["a\n", "b\n"]);
  });
});

Deno.test("JsonFileWriter drops lines beyond its buffer instead of waiting, and counts them", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 0, maxFile: 1 }, { maxBuffer: 1000 });
    for (let i = 0; i < 100; i++) w.write("stdout", enc.encode(`line ${i}\n`));
    assert.ok(w.dropped > 0);
    await w.close();
    assert.equal((await collect(readJsonLog(path))).length + w.dropped, 100);
  });
});

Deno.test("readJsonLog() tails across rotated files, filters by time, and skips a torn last line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const line = (i: number) =>
      formatJsonLogLine({
        log: `l${i}\n`,
        stream: i % 2 ? "stderr" : "stdout",
        time: `2026-01-01T00:00:0${i}.5Z`,
      });
    await Deno.writeTextFile(`${path}.2`, line(0) + line(1));
    await Deno.writeTextFile(`${path}.1`, line(2) + line(3));
    await Deno.writeTextFile(path, line(4) + line(5) + '{"log":"torn');
    const logs = async (o: Parameters<typeof readJsonLog>[1]) =>
      (await collect(readJsonLog(path, o))).map((e) => e.log);
    assert.deepEqual(await logs({}), ["l0\n", "l1\n", "l2\n", "l3\n", "l4\n", "l5\n"]);
    assert.deepEqual(await logs({ tail: 3 }), ["l3\n", "l4\n", "l5\n"]);
    assert.deepEqual(await logs({ tail: 0 }), []);
    assert.deepEqual(await logs({ tail: 100 }), ["l0\n", "l1\n", "l2\n", "l3\n", "l4\n", "l5\n"]);
    assert.deepEqual(
      await logs({ since: new Date("2026-01-01T00:00:01Z"), until: new Date("2026-01-01T00:00:04Z") }),
      ["l1\n", "l2\n", "l3\n"],
    );
    assert.deepEqual((await collect(readJsonLog(path, { tail: 1 })))[0]?.stream, "stderr");
    assert.deepEqual(await logs({}).then(() => collect(readJsonLog(`${dir}/none.log`))), []);
  });
});

Deno.test("readJsonLog() follows appended lines through rotations until its signal aborts", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const w = await JsonFileWriter.open({ path, maxSize: 300, maxFile: 2 });
    w.write("stdout", enc.encode("before\n"));
    await w.flushed();
    const abort = new AbortController();
    const got: string[] = [];
    let started!: () => void;
    const first = new Promise<void>((r) => started = r);
    const reading = (async () => {
      for await (const e of readJsonLog(path, { follow: true, tail: 1, signal: abort.signal, pollMs: 10 })) {
        got.push(e.log);
        started();
        if (got.length === 31) abort.abort();
      }
    })();
    await first;
    for (let i = 0; i < 30; i++) {
      w.write(i % 2 ? "stderr" : "stdout", enc.encode(`n${i}\n`));
      await w.flushed();
      // Slower than the reader's poll, so that it sees each rotation.
      await new Promise((r) => setTimeout(r, 15));
    }
    const timer = setTimeout(() => abort.abort(), 5000);
    await reading;
    clearTimeout(timer);
    await w.close();
    assert.deepEqual(got, ["before\n", ...Array.from({ length: 30 }, (_, i) => `n${i}\n`)]);
    assert.ok(Deno.statSync(`${path}.1`).isFile);
  });
});

Deno.test("readJsonLog() tails a log over many blocks from its end, and a follow completes a torn line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c.log`;
    const line = (i: number) =>
      formatJsonLogLine({
        log: `l${i}${"x".repeat(i % 300)}\n`,
        stream: "stdout",
        time: "2026-01-01T00:00:00Z",
      });
    let text = "";
    for (let i = 0; i < 5000; i++) text += line(i);
    const torn = line(5000);
    await Deno.writeTextFile(path, text + torn.slice(0, 20));
    for (const tail of [1, 999, 4999, 5000, 7000]) {
      const got = await collect(readJsonLog(path, { tail }));
      const first = Math.max(0, 5000 - tail);
      assert.equal(got.length, 5000 - first, `tail ${tail}`);
      assert.equal(got[0]!.log, `l${first}${"x".repeat(first % 300)}\n`);
    }
    const abort = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of readJsonLog(path, { tail: 1, follow: true, signal: abort.signal, pollMs: 10 })) {
        got.push(e.log.slice(0, 5));
        if (got.length === 2) abort.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await Deno.writeTextFile(path, torn.slice(20), { append: true });
    const timer = setTimeout(() => abort.abort(), 5000);
    await reading;
    clearTimeout(timer);
    assert.deepEqual(got, ["l4999", "l5000"]);
  });
});
