import assert from "node:assert/strict";
import {
  cgroupsPath,
  cleanPath,
  mergeGids,
  parseProfilePath,
  passthroughAnnotations,
  restrictOomScoreAdj,
} from "./spec_opts.ts";
import { SecurityProfile_ProfileType as ProfileType } from "../../gen/k8s/cri/runtime/v1/api_pb.ts";

Deno.test("cgroupsPath() joins a cgroupfs parent and uses the last slice of a systemd one", () => {
  assert.equal(cgroupsPath("/kubepods/burstable/", "id"), "/kubepods/burstable/id");
  assert.equal(cgroupsPath("kubepods//x/../y", "id"), "kubepods/y/id");
  assert.equal(
    cgroupsPath("/kubepods.slice/kubepods-pod1.slice", "id"),
    "kubepods-pod1.slice:cri-containerd:id",
  );
  assert.equal(cgroupsPath("system.slice", "id"), "system.slice:cri-containerd:id");
});

Deno.test("cleanPath() cleans like Go's filepath.Clean", () => {
  assert.equal(cleanPath("/a/b/../c/./"), "/a/c");
  assert.equal(cleanPath("/../a"), "/a");
  assert.equal(cleanPath("a/../../b"), "../b");
  assert.equal(cleanPath(""), ".");
});

Deno.test("passthroughAnnotations() matches keys with path.Match, where * stops at a slash", () => {
  const annotations = { "a.b/c": "1", "a.b/c/d": "2", "x": "3", "a.b/z": "4", "a?": "5" };
  assert.deepEqual(passthroughAnnotations(annotations, ["a.b/*"]), { "a.b/c": "1", "a.b/z": "4" });
  assert.deepEqual(passthroughAnnotations(annotations, ["a.b/[a-c]", "?"]), { "a.b/c": "1", "x": "3" });
  assert.deepEqual(passthroughAnnotations(annotations, ["a\\?"]), { "a?": "5" });
  assert.deepEqual(passthroughAnnotations(annotations, ["[unclosed"]), {});
  assert.deepEqual(passthroughAnnotations(annotations, ["a.b/[^c]"]), { "a.b/z": "4" });
});

Deno.test("mergeGids() unites and sorts, and gives nothing for nothing", () => {
  assert.deepEqual(mergeGids([3000, 5], [5, 0]), [0, 5, 3000]);
  assert.equal(mergeGids([], undefined), undefined);
});

Deno.test("restrictOomScoreAdj() raises a score below the runtime's own", () => {
  assert.equal(restrictOomScoreAdj(-998, -500), -500);
  assert.equal(restrictOomScoreAdj(100, -500), 100);
});

Deno.test("parseProfilePath() reads containerd's profile names and refuses others", () => {
  assert.equal(parseProfilePath("docker/default").profileType, ProfileType.RuntimeDefault);
  assert.equal(parseProfilePath("unconfined").profileType, ProfileType.Unconfined);
  assert.deepEqual(parseProfilePath("localhost//p.json"), {
    profileType: ProfileType.Localhost,
    localhostRef: "/p.json",
  });
  assert.throws(() => parseProfilePath("/p.json"), /Invalid security profile "\/p.json"/);
});
