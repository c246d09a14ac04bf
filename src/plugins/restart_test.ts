import assert from "node:assert/strict";
import { AUTO_REMOVE_LABEL } from "../core/restart/mod.ts";
import { LABELS } from "../docker/labels.ts";
import { dataRootOf } from "./restart.ts";

Deno.test("The CLI's auto-remove label is the one the daemon reads; dataRootOf() reads the state folder", () => {
  assert.equal(LABELS.autoRemove, AUTO_REMOVE_LABEL);
  const labels = { "nerdctl/state-dir": "/var/lib/berth/docker/0a1b2c3d/containers/ns1/c1" };
  assert.equal(dataRootOf(labels, "ns1", "c1"), "/var/lib/berth/docker");
  assert.equal(dataRootOf(labels, "ns1", "other"), undefined);
  assert.equal(dataRootOf({ "nerdctl/state-dir": "/x/containers/ns1/c1" }, "ns1", "c1"), undefined);
  assert.equal(dataRootOf({}, "ns1", "c1"), undefined);
});
