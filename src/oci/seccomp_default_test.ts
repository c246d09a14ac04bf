import assert from "node:assert/strict";

const cache = `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache`}/berth-tests`;

/** The containerd source tree scripts/containerd_source.sh unpacked, if any. */
function containerdTree(): string | undefined {
  try {
    for (const e of Deno.readDirSync(`${cache}/containerd-src`)) {
      const tree = `${cache}/containerd-src/${e.name}`;
      if (e.isDirectory && Deno.statSync(`${tree}/contrib/seccomp/seccomp_default.go`).isFile) return tree;
    }
  } catch { /* not fetched */ }
  return undefined;
}

const tree = containerdTree();

Deno.test({
  name: "seccomp_default.ts is what the generator makes of containerd's seccomp_default.go",
  ignore: tree === undefined,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", new URL("./seccomp_default_gen.ts", import.meta.url).pathname, tree!],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const committed = await Deno.readTextFile(new URL("./seccomp_default.ts", import.meta.url));
    assert.equal(new TextDecoder().decode(out.stdout), committed);
  },
});
