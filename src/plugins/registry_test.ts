import assert from "node:assert/strict";
import { EventBus } from "../core/events/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { silentLogger } from "../daemon/log.ts";
import { type InitContext, type InitOptions, PluginRegistry, SkipPlugin } from "./registry.ts";

async function withOptions(fn: (o: InitOptions) => Promise<void>, extra: Partial<InitOptions> = {}) {
  const dir = await Deno.makeTempDir();
  const db = new MetadataDB(":memory:");
  try {
    await fn({
      root: `${dir}/root`,
      state: `${dir}/state`,
      address: `${dir}/s.sock`,
      db,
      events: new EventBus(),
      log: silentLogger,
      pluginConfig: (type, id) => (type === "t.a" && id === "one" ? { answer: 42 } : {}),
      ...extra,
    });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("PluginRegistry initialises a plugin after the types it requires, with its own folders and config", async () => {
  await withOptions(async (o) => {
    const order: string[] = [];
    const reg = new PluginRegistry()
      .register({
        type: "t.b",
        id: "two",
        requires: ["t.a"],
        init: (ic) => {
          order.push("two");
          return { dep: ic.get<{ n: number }>("t.a").n };
        },
      })
      .register({
        type: "t.a",
        id: "one",
        configKeys: ["answer"],
        init: async (ic) => {
          order.push("one");
          assert.ok((await Deno.stat(ic.root)).isDirectory);
          assert.equal(ic.root, `${o.root}/t.a.one`);
          assert.equal(ic.state, `${o.state}/t.a.one`);
          return { n: ic.config.answer as number };
        },
      });
    await reg.init(o);
    assert.deepEqual(order, ["one", "two"]);
    assert.deepEqual(reg.get("t.b"), { dep: 42 });
    assert.deepEqual(reg.records.map((r) => r.status), ["ok", "ok"]);
  });
});

Deno.test("PluginRegistry runs onServing work once the daemon serves, at once after that, and survives a throw", async () => {
  await withOptions(async (o) => {
    const ran: string[] = [];
    let context: InitContext | undefined;
    const reg = new PluginRegistry().register({
      type: "t.a",
      id: "one",
      init: (ic) => {
        context = ic;
        ic.onServing(() => ran.push("first"));
        ic.onServing(() => {
          throw new Error("broken");
        });
        ic.onServing(() => ran.push("second"));
        return {};
      },
    });
    await reg.init(o);
    assert.equal(ran.length, 0, "ran before the daemon served");
    reg.serving();
    assert.deepEqual(ran, ["first", "second"]);
    context!.onServing(() => ran.push("late"));
    assert.deepEqual(ran, ["first", "second", "late"]);
  });
});

Deno.test("PluginRegistry reports skip and error apart, and a dependant of a failed plugin fails too", async () => {
  await withOptions(async (o) => {
    const reg = new PluginRegistry()
      .register({ type: "t.s", id: "skipper", init: () => Promise.reject(new SkipPlugin("no overlay here")) })
      .register({ type: "t.e", id: "broken", init: () => Promise.reject(new Error("disk on fire")) })
      .register({ type: "t.d", id: "dependant", requires: ["t.e"], init: (ic) => ic.get("t.e") });
    await reg.init(o);
    const [s, e, d] = reg.records;
    assert.equal(s!.status, "skip");
    assert.equal(s!.error, "no overlay here");
    assert.equal(e!.status, "error");
    assert.equal(d!.status, "error");
    assert.match(d!.error!, /Plugin t\.e is not loaded/);
  });
});

Deno.test("PluginRegistry honours disabled_plugins and fails when a required plugin is not ok", async () => {
  await withOptions(async (o) => {
    let ran = false;
    const reg = new PluginRegistry().register({
      type: "t.x",
      id: "off",
      init: () => {
        ran = true;
      },
    });
    await reg.init({ ...o, disabled: ["t.x.off"] });
    assert.equal(ran, false);
    assert.equal(reg.records[0]!.status, "skip");
  });
  await withOptions(async (o) => {
    const reg = new PluginRegistry().register({
      type: "t.x",
      id: "bad",
      init: () => Promise.reject(new Error("no")),
    });
    await assert.rejects(
      reg.init({ ...o, required: ["t.x.bad"] }),
      /Required plugin t\.x\.bad is not loaded: no/,
    );
  });
});

Deno.test("PluginRegistry refuses a dependency cycle", async () => {
  await withOptions(async (o) => {
    const reg = new PluginRegistry()
      .register({ type: "t.a", id: "a", requires: ["t.b"], init: () => 1 })
      .register({ type: "t.b", id: "b", requires: ["t.a"], init: () => 2 });
    await assert.rejects(reg.init(o), /Plugin dependency cycle/);
  });
});

Deno.test("PluginRegistry gives a plugin only the config keys it declares, and reading another throws", async () => {
  await withOptions(async (o) => {
    const seen: unknown[] = [];
    const reg = new PluginRegistry()
      .register({
        type: "t.c",
        id: "careful",
        configKeys: ["wanted"],
        init: (ic) => {
          seen.push({ ...ic.config }, ic.config.wanted);
          return true;
        },
      })
      .register({
        type: "t.c",
        id: "sloppy",
        init: (ic) => ic.config.undeclared,
      });
    await reg.init({ ...o, pluginConfig: () => ({ wanted: 1, other: 2 }) });
    assert.deepEqual(seen, [{ wanted: 1 }, 1]);
    const sloppy = reg.records.find((r) => r.id === "sloppy")!;
    assert.equal(sloppy.status, "error");
    assert.match(sloppy.error!, /Plugin t\.c\.sloppy reads config key "undeclared" but does not declare it/);
  });
});

Deno.test("PluginRegistry.unusedConfig names unknown plugin sections, undeclared keys and unknown disabled plugins", () => {
  const reg = new PluginRegistry()
    .register({ type: "io.example.v1", id: "store", configKeys: ["root_dir"], init: () => 1 })
    .register({ type: "io.example.v1", id: "quiet", init: () => 2 });
  const warnings = reg.unusedConfig({
    "io.example.v1.store": { root_dir: "/x", root_path: "/y" },
    "io.containerd.grpc.v1.cri": { sandbox_image: "pause" },
    quiet: { verbose: true },
    store: { root_dir: "/z" },
  }, { disabled: ["io.example.v1.quiet", "io.containerd.snapshotter.v1.btrfs"] });
  assert.deepEqual(warnings, [
    {
      msg: "config key is not implemented by Berth: ignored",
      fields: { key: 'plugins."io.example.v1.store".root_path' },
    },
    {
      msg: "config section is for a plugin Berth does not have: ignored",
      fields: { section: 'plugins."io.containerd.grpc.v1.cri"' },
    },
    { msg: "config key is not implemented by Berth: ignored", fields: { key: "plugins.quiet.verbose" } },
    {
      msg: "disabled_plugins names a plugin Berth does not have",
      fields: { plugin: "io.containerd.snapshotter.v1.btrfs" },
    },
  ]);
});

Deno.test("InitContext.getOptional() gives a loaded plugin and undefined for one disabled in config", async () => {
  await withOptions(async (o) => {
    const seen: unknown[] = [];
    const reg = new PluginRegistry()
      .register({ type: "t.lease", id: "manager", init: () => ({ lease: true }) })
      .register({ type: "t.gc", id: "scheduler", init: () => ({ gc: true }) })
      .register({
        type: "t.user",
        id: "u",
        requires: ["t.lease", "t.gc"],
        init: (ic) => {
          seen.push(ic.getOptional("t.lease", "manager"), ic.getOptional("t.gc", "scheduler"));
          return {};
        },
      });
    await reg.init({ ...o, disabled: ["t.gc.scheduler"] });
    assert.deepEqual(seen, [{ lease: true }, undefined]);
  });
});

Deno.test("PluginRegistry starts early plugins once, before the rest, lists them in their place and pauses before each other one", async () => {
  await withOptions(async (o) => {
    const order: string[] = [];
    const plugin = (id: string, extra: { early?: boolean; requires?: string[] } = {}) => ({
      type: `t.${id}`,
      id,
      ...extra,
      init: () => {
        order.push(id);
        return id;
      },
    });
    const version = plugin("version", { early: true });
    const reg = new PluginRegistry()
      .register(plugin("core"))
      .register(version)
      .register(plugin("needy", { early: true, requires: ["t.core"] }))
      .register(plugin("off", { early: true }));
    const early = await reg.initEarly({ ...o, disabled: ["t.off.off"] });
    // A plugin that requires another cannot start early; a disabled one does not start at all.
    assert.deepEqual(early.map((r) => [r.id, r.status]), [["version", "ok"], ["off", "skip"]]);
    assert.deepEqual(order, ["version"]);
    // The same definition registered again takes its place at the end; another one of that id is an error.
    reg.register(version);
    assert.throws(() => reg.register(plugin("version")), /registered twice/);
    let pauses = 0;
    await reg.init({ ...o, disabled: ["t.off.off"], pause: () => Promise.resolve(void pauses++) });
    assert.deepEqual(order, ["version", "core", "needy"]);
    assert.equal(pauses, 2, "one pause before each plugin that was not started early");
    assert.deepEqual(reg.records.map((r) => [r.id, r.status]), [
      ["core", "ok"],
      ["needy", "ok"],
      ["off", "skip"],
      ["version", "ok"],
    ]);
  });
});
