import assert from "node:assert/strict";
import { CriLogFile, redirectLogs } from "./logs.ts";

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return ReadableStream.from(chunks.map((c) => enc.encode(c)));
}

async function logOf(fn: (log: CriLogFile) => Promise<void>): Promise<string[][]> {
  const dir = await Deno.makeTempDir();
  try {
    const log = await CriLogFile.open(`${dir}/sub/0.log`);
    await fn(log);
    await log.close();
    const text = await Deno.readTextFile(`${dir}/sub/0.log`);
    return text.split("\n").filter((l) => l !== "").map((l) => {
      const [time, stream, tag, ...rest] = l.split(" ");
      assert.match(time!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      return [stream!, tag!, rest.join(" ")];
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("redirectLogs() writes one CRI record per line, joining lines split across reads", async () => {
  const lines = await logOf((log) =>
    redirectLogs(streamOf("hel", "lo\nwor", "ld\r\n\nlast"), log, "stdout", 0)
  );
  assert.deepEqual(lines, [["stdout", "F", "hello"], ["stdout", "F", "world"], ["stdout", "F", ""], [
    "stdout",
    "P",
    "last",
  ]]);
});

Deno.test("redirectLogs() cuts a line longer than the maximum into partial records", async () => {
  const lines = await logOf((log) => redirectLogs(streamOf("abcdefghij\n", "xyz\n"), log, "stderr", 4));
  assert.deepEqual(lines, [
    ["stderr", "P", "abcd"],
    ["stderr", "P", "efgh"],
    ["stderr", "F", "ij"],
    ["stderr", "F", "xyz"],
  ]);
});

Deno.test("CriLogFile.reopen() continues in a new file after the old one was moved away", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = await CriLogFile.open(`${dir}/0.log`);
    await log.write("stdout", false, new TextEncoder().encode("one"));
    await Deno.rename(`${dir}/0.log`, `${dir}/0.log.1`);
    await log.reopen();
    await log.write("stdout", false, new TextEncoder().encode("two"));
    await log.close();
    assert.match(await Deno.readTextFile(`${dir}/0.log.1`), / stdout F one\n$/);
    assert.match(await Deno.readTextFile(`${dir}/0.log`), / stdout F two\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
