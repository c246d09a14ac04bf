import assert from "node:assert/strict";
import { writeFileAtomic, writeFileAtomicSync } from "./atomic_write.ts";

Deno.test("writeFileAtomic() replaces a file whole and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/f`, "one", { mode: 0o600 });
    assert.equal((await Deno.stat(`${dir}/f`)).mode! & 0o777, 0o600);
    writeFileAtomicSync(`${dir}/f`, new TextEncoder().encode("two"));
    assert.equal(await Deno.readTextFile(`${dir}/f`), "two");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f"]);
    // A crash between write and rename leaves the old content and a temp file the next write reuses.
    await Deno.writeTextFile(`${dir}/.f.tmp`, "half");
    assert.equal(await Deno.readTextFile(`${dir}/f`), "two");
    await writeFileAtomic(`${dir}/f`, "three");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
