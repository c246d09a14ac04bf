import assert from "node:assert/strict";
import { parseGroup, parsePasswd, resolveInRoot, userDbFromRootfs } from "./user.ts";

Deno.test("parsePasswd() and parseGroup() skip blank and comment lines and split members", () => {
  assert.deepEqual(parsePasswd("# c\n\nroot:x:0:0:root:/root:/bin/sh\n"), [
    { name: "root", uid: 0, gid: 0, home: "/root" },
  ]);
  assert.deepEqual(parseGroup("wheel:x:10:a,b\nempty:x:11:\n"), [
    { name: "wheel", gid: 10, members: ["a", "b"] },
    { name: "empty", gid: 11, members: [] },
  ]);
});

Deno.test("userDbFromRootfs() follows symlinks inside the rootfs, never to the host's files", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-oci-user-" });
  try {
    await Deno.mkdir(`${root}/etc`);
    await Deno.mkdir(`${root}/data`);
    await Deno.writeTextFile(`${root}/data/passwd`, "app:x:1:2::/:/bin/sh\n");
    // Absolute: must resolve to <root>/data/passwd, not the host's /data/passwd.
    await Deno.symlink("/data/passwd", `${root}/etc/passwd`);
    // Escaping with ..: must stay at the rootfs top, so <root>/etc/shadow-group, which is missing.
    await Deno.symlink("../../../../etc/group-missing", `${root}/etc/group`);
    const db = await userDbFromRootfs(root);
    assert.equal(db.passwd, "app:x:1:2::/:/bin/sh\n");
    assert.equal(db.group, undefined);
    assert.equal(await resolveInRoot(root, "/etc/../etc/passwd"), `${root}/data/passwd`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("userDbFromRootfs() reports a rootfs without the files as undefined, not an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-oci-user-" });
  try {
    assert.deepEqual(await userDbFromRootfs(root), { passwd: undefined, group: undefined });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
