import assert from "node:assert/strict";
import { fdSyscalls, O_NONBLOCK, O_WRONLY } from "../../ffi/fd.ts";
import { fsSyscalls, S_IFIFO } from "../../ffi/fs.ts";
import { ProcessOutputs } from "./output.ts";
import { PipeStdio } from "./stdio.ts";

/** A PipeStdio reading stdin from a fresh FIFO into `got` (the process's stdin), no outputs. */
function pipeStdio(dir: string) {
  const fifo = `${dir}/stdin`;
  fsSyscalls().mknod(fifo, S_IFIFO | 0o600, 0, 0);
  const chunks: Uint8Array[] = [];
  let closed = false;
  const stdin = new WritableStream<Uint8Array>({
    write: (c) => void chunks.push(c),
    close: () => void (closed = true),
    abort: () => void (closed = true),
  });
  const stdio = new PipeStdio({ stdin, stdout: null, stderr: null }, fifo, new ProcessOutputs());
  const got = () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  return { fifo, stdio, got, closed: () => closed };
}

Deno.test("CloseIO after the client wrote and closed its end: the process still gets every byte, then its end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-stdio-" });
  const sys = fdSyscalls();
  try {
    const { fifo, stdio, got, closed } = pipeStdio(dir);
    // What ctr, CRI exec and Berth's CLI do at their stdin's end: write, close, then CloseIO at once.
    const w = sys.open(fifo, O_WRONLY | O_NONBLOCK);
    sys.writeSync(w, new TextEncoder().encode("ping\npong\n"));
    sys.close(w);
    await stdio.endStdin();
    assert.equal(got(), "ping\npong\n");
    assert.ok(closed());
    await stdio.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CloseIO while the client still holds its end cuts the process's stdin after the drain time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-stdio-" });
  const sys = fdSyscalls();
  let w = -1;
  try {
    const { fifo, stdio, got, closed } = pipeStdio(dir);
    w = sys.open(fifo, O_WRONLY | O_NONBLOCK);
    sys.writeSync(w, new TextEncoder().encode("a\n"));
    const t0 = performance.now();
    await stdio.endStdin();
    assert.ok(performance.now() - t0 < 5_000);
    assert.equal(got(), "a\n");
    for (let i = 0; i < 100 && !closed(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(closed(), "the process's stdin was closed");
    await stdio.close();
  } finally {
    if (w >= 0) sys.close(w);
    await Deno.remove(dir, { recursive: true });
  }
});
