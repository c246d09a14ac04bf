import assert from "node:assert/strict";
import { errorKind } from "../base/errors.ts";
import { LibcProcessSyscalls } from "../../ffi/process.ts";
import { openOutputs, type OpenOutputsOptions, outputTarget } from "./output.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const proc = new LibcProcessSyscalls();
const options = (extra: Partial<OpenOutputsOptions> = {}): OpenOutputsOptions => ({
  id: "c1",
  logger: { namespace: "ns1", reaper: { claim: () => {} }, proc },
  ...extra,
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-output-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" }).output();
  assert.ok(out.success, dec.decode(out.stderr));
}

Deno.test("outputTarget() reads paths, file:// and binary:// URIs as containerd's shim does", () => {
  assert.deepEqual(outputTarget("/f/out", "/f/err"), { kind: "paths", stdout: "/f/out", stderr: "/f/err" });
  assert.deepEqual(outputTarget("/f/out", ""), { kind: "paths", stdout: "/f/out", stderr: "" });
  assert.deepEqual(outputTarget("file:///var/log/a%20b.log", "file:///var/log/a%20b.log"), {
    kind: "file",
    path: "/var/log/a b.log",
  });
  // The query becomes arguments: each key once with its first value, even an empty one.
  assert.deepEqual(outputTarget("binary:///usr/bin/logger?out=%2Ftmp%2Fx&flag&out=2", ""), {
    kind: "binary",
    path: "/usr/bin/logger",
    args: ["out", "/tmp/x", "flag", ""],
  });
});

Deno.test("outputTarget() rejects unknown schemes and paths that are not absolute", () => {
  for (
    const [stdout, stderr, re] of [
      ["out.log", "", /Output path out\.log is not absolute/],
      ["/f/out", "err", /Output path err is not absolute/],
      ["fifo:///f/out", "", /Output URI fifo:\/\/\/f\/out has an unknown scheme fifo/],
      ["file:///", "", /does not name an absolute file path/],
    ] as const
  ) {
    assert.throws(() => outputTarget(stdout, stderr), (err: Error) => {
      assert.match(err.message, re);
      assert.equal(errorKind(err), "invalid_argument");
      return true;
    });
  }
});

Deno.test("openOutputs() waits for a FIFO's reader, and what is written reaches it at once", async () => {
  await withDir(async (dir) => {
    const fifo = `${dir}/out`;
    await mkfifo(fifo);
    // The client opens its reader only after the shim asked: the open waits for it.
    const opening = openOutputs({ stdout: fifo, stderr: "", terminal: false }, options());
    await new Promise((r) => setTimeout(r, 50));
    const reader = await Deno.open(fifo, { read: true });
    const outputs = await opening;
    try {
      assert.equal(outputs.stderr, undefined);
      assert.ok(await outputs.stdout!.write(enc.encode("one\n")));
      const buf = new Uint8Array(16);
      const n = await reader.read(buf);
      assert.equal(dec.decode(buf.subarray(0, n!)), "one\n");
      await outputs.close();
      // Every writer gone: the reader sees the end.
      assert.equal(await reader.read(buf), null);
    } finally {
      reader.close();
    }
  });
});

Deno.test("openOutputs() fails, naming the FIFO, when no reader opens it in time", async () => {
  await withDir(async (dir) => {
    await mkfifo(`${dir}/out`);
    await assert.rejects(
      openOutputs({ stdout: `${dir}/out`, stderr: "", terminal: false }, options({ fifoTimeoutMs: 100 })),
      new RegExp(`No reader opened output FIFO ${dir}/out within 100 ms`),
    );
    await assert.rejects(
      openOutputs({ stdout: `${dir}/gone`, stderr: "", terminal: false }, options()),
      new RegExp(`Output ${dir}/gone of c1 does not exist`),
    );
  });
});

Deno.test("openOutputs() appends both streams of a file:// URI to the file as they come, parents made", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/a/b/ctr.log`;
    const uri = `file://${path}`;
    const outputs = await openOutputs({ stdout: uri, stderr: uri, terminal: false }, options());
    try {
      assert.ok(await outputs.stdout!.write(enc.encode("out\n")));
      assert.ok(await outputs.stderr!.write(enc.encode("err\n")));
      assert.equal(await Deno.readTextFile(path), "out\nerr\n");
    } finally {
      await outputs.close();
    }
    const again = await openOutputs({ stdout: uri, stderr: uri, terminal: true }, options());
    try {
      assert.equal(again.stderr, undefined);
      assert.ok(await again.stdout!.write(enc.encode("tty\n")));
    } finally {
      await again.close();
    }
    assert.equal(await Deno.readTextFile(path), "out\nerr\ntty\n");
  });
});

Deno.test("openOutputs() treats a bare path both streams share as a file, created if missing", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/logs/plain.log`;
    const outputs = await openOutputs({ stdout: path, stderr: path, terminal: false }, options());
    try {
      assert.ok(await outputs.stdout!.write(enc.encode("a\n")));
      assert.ok(await outputs.stderr!.write(enc.encode("b\n")));
    } finally {
      await outputs.close();
    }
    assert.equal(await Deno.readTextFile(path), "a\nb\n");
  });
});

Deno.test("outputTarget() reads Berth's own json-file log URI, whatever binary it names", () => {
  const uri = "binary:///usr/bin/berth?_BERTH_INTERNAL_LOGGING=json-file&path=%2Fd%2Fc-json.log" +
    "&max-size=10m&max-file=3";
  assert.deepEqual(outputTarget(uri, uri), {
    kind: "json-file",
    path: "/d/c-json.log",
    maxSize: 10 * 1024 * 1024,
    maxFile: 3,
  });
  assert.throws(
    () => outputTarget("binary:///b?_BERTH_INTERNAL_LOGGING=json-file&path=/l&max-size=big", ""),
    (err: Error) => errorKind(err) === "invalid_argument" && /Log size "big"/.test(err.message),
  );
});

Deno.test("openOutputs() writes a json-file log in the shim, no logging binary, its last words at close", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/c/c-json.log`;
    const uri = `binary:///nonexistent/berth?_BERTH_INTERNAL_LOGGING=json-file&path=${
      encodeURIComponent(path)
    }`;
    const outputs = await openOutputs({ stdout: uri, stderr: uri, terminal: false }, options());
    try {
      assert.ok(await outputs.stdout!.write(enc.encode("out\npart")));
      assert.ok(await outputs.stderr!.write(enc.encode("err\n")));
    } finally {
      await outputs.close();
    }
    const lines = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.stream, l.log]), [["stdout", "out\n"], ["stderr", "err\n"], [
      "stdout",
      "part",
    ]]);
  });
});
