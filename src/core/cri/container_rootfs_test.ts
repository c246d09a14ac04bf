import assert from "node:assert/strict";
import { imageVolumes } from "./container_rootfs.ts";

Deno.test("imageVolumes() gives each image volume a folder under the container's root, unless a CRI mount covers it", () => {
  const volumes = imageVolumes(
    "/var/lib/berth/ctr1",
    { Volumes: { "/data": {}, "/var/cache/": {}, "/logs": {} } },
    [{ containerPath: "/var/cache" }],
  );
  assert.deepEqual(volumes.map((v) => v.containerPath), ["/data", "/logs"]);
  for (const v of volumes) {
    assert.match(v.hostPath, /^\/var\/lib\/berth\/ctr1\/volumes\/[0-9a-f]{64}$/);
    assert.equal(v.readonly, false);
  }
  assert.notEqual(volumes[0]!.hostPath, volumes[1]!.hostPath);
  assert.deepEqual(imageVolumes("/r", {}, []), []);
});
