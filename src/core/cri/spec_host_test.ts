import assert from "node:assert/strict";
import { capabilitiesFromMask, hostSpecFacts } from "./spec_host.ts";

Deno.test("capabilitiesFromMask() names the set bits as containerd's cap.FromBitmap", () => {
  assert.deepEqual(capabilitiesFromMask("1"), ["CAP_CHOWN"]);
  // A host without CAP_SYS_RESOURCE (bit 24), and bits beyond the known ones, ignored.
  const names = capabilitiesFromMask("fffffffffeffffff");
  assert.equal(names.length, 40);
  assert.ok(!names.includes("CAP_SYS_RESOURCE"));
  assert.equal(names.at(-1), "CAP_CHECKPOINT_RESTORE");
});

Deno.test("hostSpecFacts() reads this process's effective capabilities and OOM score", () => {
  const host = hostSpecFacts();
  const status = Deno.readTextFileSync("/proc/self/status");
  const eff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)![1]!;
  assert.deepEqual(host.capabilities(), capabilitiesFromMask(eff));
  assert.equal(host.oomScoreAdj(), Number(Deno.readTextFileSync("/proc/self/oom_score_adj").trim()));
});
