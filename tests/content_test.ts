/**
 * Debian's ctr against Berth's content store: an ingest interrupted by killing ctr (its stream dropped)
 * or by its input ending early (its stream closed), then resumed by running ctr again on the same ref.
 */
import assert from "node:assert/strict";
import { digestOf } from "../src/oci/digest_of.ts";
import { berth, ctr, startDaemon } from "./helpers/daemon.ts";

const MiB = 1 << 20;
const NS = "ingest-test";

function pseudoRandom(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 2463534242;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * ctr content ingest with stdin from a file: ctr seeks it to the ingest's offset before it copies, so a
 * file whose first `garbage` bytes are wrong still commits the right blob only if the ingest resumed.
 */
async function ingestFromFile(address: string, args: string[], input: Uint8Array, garbage: number) {
  const file = await Deno.makeTempFile({ prefix: "berth-ingest-" });
  try {
    const bytes = input.slice();
    bytes.fill(0x5a, 0, garbage);
    await Deno.writeFile(file, bytes);
    const ctrArgs = ["--address", address, "--namespace", NS, "content", "ingest", ...args];
    const out = await new Deno.Command("sh", {
      args: ["-c", 'file=$1; shift; exec ctr "$@" < "$file"', "sh", file, ...ctrArgs],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("ctr content ingest resumes an ingest whose ctr was killed or whose input ended early", async () => {
  await using d = await startDaemon();
  const data = pseudoRandom(3 * MiB + 123);
  const digest = digestOf(data);
  const args = ["--expected-size", String(data.length), "--expected-digest", digest, "layer-1"];
  const client = d.client(NS);
  const offset = async () => {
    try {
      return Number((await client.content.status({ ref: "layer-1" })).status!.offset);
    } catch {
      return -1;
    }
  };

  // 1. ctr is killed after it has sent the first MiB: its stream drops with the connection.
  const child = new Deno.Command("ctr", {
    args: ["--address", d.address, "--namespace", NS, "content", "ingest", ...args],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stdin = child.stdin.getWriter();
  await stdin.write(data.subarray(0, MiB));
  const deadline = Date.now() + 20_000;
  while (await offset() !== MiB) {
    assert.ok(Date.now() < deadline, `the ingest did not reach 1 MiB (at ${await offset()})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill("SIGKILL");
  await child.status;
  await stdin.abort().catch(() => {});

  const active = await ctr(d.address, ["content", "active"], { namespace: NS });
  assert.equal(active.code, 0, active.stderr);
  assert.match(active.stdout, /^REF\s+SIZE\s+AGE\s*\nlayer-1\s+1\.049MB\s+/);
  const mine = await berth(["--address", d.address, "--namespace", NS, "content", "active"]);
  assert.match(mine.stdout, /^REF\s+SIZE\s+AGE\nlayer-1\s+1(\.0)? MiB\s+/);
  const st = (await client.content.status({ ref: "layer-1" })).status!;
  assert.deepEqual([st.offset, st.total, st.expected], [BigInt(MiB), BigInt(data.length), digest]);
  const namespaces = await ctr(d.address, ["namespaces", "ls", "-q"]);
  assert.match(namespaces.stdout, new RegExp(`^${NS}$`, "m"));

  // 2. ctr runs again on the same ref at once, resumes at 1 MiB, but its input ends at 2 MiB: the Go
  // client closes the stream without a commit, and the ingest keeps what it got.
  const short = await ingestFromFile(d.address, args, data.subarray(0, 2 * MiB), MiB);
  assert.notEqual(short.code, 0);
  assert.match(short.stderr, /unexpected EOF/);
  assert.equal(await offset(), 2 * MiB);

  // 3. And once more, from 2 MiB to the end: the commit verifies the whole blob, the first 2 MiB of
  // which only Berth has (the file given here starts with 2 MiB of garbage).
  const done = await ingestFromFile(d.address, args, data, 2 * MiB);
  assert.equal(done.code, 0, done.stderr);
  const got = await new Deno.Command("ctr", {
    args: ["--address", d.address, "--namespace", NS, "content", "get", digest],
    stdout: "piped",
  }).output();
  assert.deepEqual(got.stdout, data);
  const after = await ctr(d.address, ["content", "active"], { namespace: NS });
  assert.match(after.stdout.trim(), /^REF\s+SIZE\s+AGE$/);
  const info = (await client.content.info({ digest })).info!;
  assert.equal(info.size, BigInt(data.length));
});
