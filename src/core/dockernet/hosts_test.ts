import assert from "node:assert/strict";
import { attachedContainers, hostResolvConf, HostsStore, renderHosts, resolvConf } from "./hosts.ts";

const meta = (
  id: string,
  networks: Record<string, string>,
  extra: { name?: string; aliases?: string[] } = {},
) => ({
  id,
  hostname: id.slice(0, 6),
  name: extra.name ?? `n-${id}`,
  aliases: extra.aliases ?? [],
  networks,
});

Deno.test("HostsStore.writeInitialHosts() writes localhost and the hostname before the container exists", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new HostsStore(root, "default");
    const path = await store.writeInitialHosts("abc", "myhost");
    assert.equal(path, `${root}/etchosts/default/abc/hosts`);
    const text = await Deno.readTextFile(path);
    assert.match(text, /^# <nerdctl>\n127\.0\.0\.1\tlocalhost localhost\.localdomain\n::1\t\tlocalhost/);
    assert.match(text, /127\.0\.1\.1\tmyhost\n# <\/nerdctl>\n$/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("HostsStore.attach() rewrites in place the files of containers sharing a network, and only theirs", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new HostsStore(root, "default");
    for (const id of ["aaaaaaaa", "bbbbbbbb", "cccccccc"]) await store.writeInitialHosts(id, id.slice(0, 6));
    const inodeA = (await Deno.stat(store.hostsPath("aaaaaaaa"))).ino;
    await store.attach(meta("aaaaaaaa", { front: "10.4.1.2" }, { aliases: ["web"] }));
    await store.attach(meta("bbbbbbbb", { front: "10.4.1.3", bridge: "10.4.0.2" }));
    await store.attach(meta("cccccccc", { bridge: "10.4.0.3" }));
    const a = await Deno.readTextFile(store.hostsPath("aaaaaaaa"));
    assert.match(a, /10\.4\.1\.2 +aaaaaa aaaaaa\.front n-aaaaaaaa n-aaaaaaaa\.front web web\.front\n/);
    assert.match(a, /10\.4\.1\.3 +bbbbbb bbbbbb\.front n-bbbbbbbb n-bbbbbbbb\.front\n/);
    assert.doesNotMatch(a, /10\.4\.0\./, "not on the bridge network");
    assert.doesNotMatch(a, /127\.0\.1\.1/, "the placeholder line is replaced");
    assert.equal((await Deno.stat(store.hostsPath("aaaaaaaa"))).ino, inodeA, "same inode");
    const c = await Deno.readTextFile(store.hostsPath("cccccccc"));
    assert.match(c, /10\.4\.0\.2 +bbbbbb n-bbbbbbbb\n10\.4\.0\.3 +cccccc n-cccccccc\n/, "no .bridge names");
    assert.doesNotMatch(c, /10\.4\.1\./);
    assert.deepEqual((await attachedContainers(root)).map((x) => x.meta.id), [
      "aaaaaaaa",
      "bbbbbbbb",
      "cccccccc",
    ]);

    await store.detach("bbbbbbbb");
    assert.doesNotMatch(await Deno.readTextFile(store.hostsPath("aaaaaaaa")), /bbbbbb/);
    assert.doesNotMatch(await Deno.readTextFile(store.hostsPath("cccccccc")), /bbbbbb/);
    assert.equal((await Deno.stat(store.hostsPath("aaaaaaaa"))).ino, inodeA);
    await store.detach("bbbbbbbb"); // twice is fine
    await store.remove("aaaaaaaa");
    await assert.rejects(Deno.stat(store.dir("aaaaaaaa")), Deno.errors.NotFound);
    assert.deepEqual((await store.list()).map((m) => m.id), ["cccccccc"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("renderHosts() keeps lines added outside the marked block, but not loopback ones", () => {
  const me = meta("aaaaaaaa", { front: "10.4.1.2" });
  const previous =
    "# <nerdctl>\n127.0.0.1 localhost\n10.9.9.9 old\n# </nerdctl>\n192.168.1.5 db.example\n127.0.0.1 x\n";
  const text = renderHosts(me, [me], previous);
  assert.match(text, /^192\.168\.1\.5 db\.example\n# <nerdctl>\n/);
  assert.doesNotMatch(text, /old|127\.0\.0\.1 x/);
});

Deno.test("resolvConf() drops loopback nameservers, falls back to Docker's, and --dns replaces them", () => {
  const host =
    "# comment\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nsearch example.com\noptions edns0\n";
  assert.equal(resolvConf(host), "search example.com\nnameserver 192.168.1.1\noptions edns0\n");
  assert.equal(resolvConf("nameserver 127.0.0.1\n"), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  assert.equal(
    resolvConf(host, { dns: ["1.1.1.1"] }),
    "search example.com\nnameserver 1.1.1.1\noptions edns0\n",
  );
});

Deno.test("hostResolvConf() reads systemd-resolved's upstream file when /etc/resolv.conf is its stub", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/etc`, "nameserver 127.0.0.53\n");
    await Deno.writeTextFile(`${root}/resolved`, "nameserver 10.0.0.1\n");
    assert.equal(await hostResolvConf(`${root}/etc`, `${root}/resolved`), "nameserver 10.0.0.1\n");
    assert.equal(await hostResolvConf(`${root}/etc`, `${root}/missing`), "nameserver 127.0.0.53\n");
    await Deno.writeTextFile(`${root}/etc`, "nameserver 10.1.1.1\n");
    assert.equal(await hostResolvConf(`${root}/etc`, `${root}/resolved`), "nameserver 10.1.1.1\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
