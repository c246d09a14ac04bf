import assert from "node:assert/strict";
import { readonlyMounts } from "./mount.ts";

Deno.test("readonlyMounts() makes a lone overlay read-only and leaves the snapshot's mounts untouched", () => {
  const overlay = [{ type: "overlay", source: "overlay", target: "", options: ["lowerdir=/a:/b"] }];
  assert.deepEqual(readonlyMounts(overlay), [
    { type: "overlay", source: "overlay", options: ["lowerdir=/a:/b", "ro"] },
  ]);
  assert.deepEqual(overlay[0]!.options, ["lowerdir=/a:/b"]);
});

Deno.test("readonlyMounts() leaves bind mounts and several mounts as they are", () => {
  const bind = [{ type: "bind", source: "/s", options: ["rbind", "rw"] }];
  assert.deepEqual(readonlyMounts(bind), bind);
  const two = [
    { type: "overlay", source: "overlay", options: ["a"] },
    { type: "bind", source: "/x", options: ["rbind"] },
  ];
  assert.deepEqual(readonlyMounts(two), two);
});
