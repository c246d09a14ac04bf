/**
 * The CRI spec goldens of src/core/cri/testdata are still what containerd 1.6 builds: the script that
 * made them reruns against Debian's containerd and compares (about 15 s). Needs root, containerd, runc,
 * the CNI plugins, Go and the containerd source tree (scripts/containerd_source.sh).
 */
import assert from "node:assert/strict";
import { hasCriGoClient } from "./helpers/go_client.ts";

const canRun = hasCriGoClient && Deno.uid() === 0 && await (async () => {
  for (const bin of ["containerd", "ctr", "runc"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null" })
      .output();
    if (!found.success) return false;
  }
  return await Deno.stat("/usr/lib/cni/bridge").then(() => true, () => false);
})();

Deno.test({
  name: "containerd 1.6's CRI still builds the golden specs containerSpec() is checked against",
  ignore: !canRun,
  async fn() {
    const script = new URL("../scripts/cri_spec_goldens.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--check"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(600_000),
    }).output();
    const dec = new TextDecoder();
    // 2: this host differs from the goldens' (cgroup v2, another /dev…), so its specs differ too.
    if (out.code === 2) return console.log("Not compared: this host's facts differ from the goldens' host");
    assert.ok(out.success, `${dec.decode(out.stdout)}\n${dec.decode(out.stderr)}`);
  },
});
