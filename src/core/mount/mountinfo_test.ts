import assert from "node:assert/strict";
import { lookupMount, parseMountInfo } from "./mountinfo.ts";

const SAMPLE = [
  "22 27 0:21 / /proc rw,relatime - proc proc rw",
  "27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "30 27 0:30 / /tmp/with\\040space rw shared:5 master:2 - tmpfs tmpfs rw",
  "31 27 0:31 / /var/lib rw master:7 - tmpfs tmpfs rw",
  "32 27 0:32 / /var rw - tmpfs tmpfs rw",
].join("\n") + "\n";

Deno.test("parseMountInfo() reads optional fields and unescapes paths", () => {
  const m = parseMountInfo(SAMPLE);
  assert.equal(m.length, 5);
  assert.equal(m[2]!.mountpoint, "/tmp/with space");
  assert.equal(m[2]!.optional, "shared:5 master:2");
  assert.equal(m[0]!.optional, "");
  assert.equal(m[1]!.fsType, "ext4");
  assert.equal(m[1]!.source, "/dev/vda");
});

Deno.test("lookupMount() picks the longest mount point that prefixes the cleaned path", () => {
  const m = parseMountInfo(SAMPLE);
  assert.equal(lookupMount("/var/lib/x/../y", m).mountpoint, "/var/lib");
  assert.equal(lookupMount("/var/log", m).mountpoint, "/var");
  assert.equal(lookupMount("/home", m).mountpoint, "/");
});

Deno.test("lookupMount() compares strings like moby's ParentsFilter, not path components", () => {
  // "/variable" starts with "/var": containerd's Lookup takes /var's mount for it.
  assert.equal(lookupMount("/variable", parseMountInfo(SAMPLE)).mountpoint, "/var");
});
