import assert from "node:assert/strict";
import { fastFlag, readFlags } from "./fast_flags.ts";

const TABLE = new Map([
  ["-d", fastFlag("detach", "boolean")],
  ["-i", fastFlag("interactive", "boolean")],
  ["-e", fastFlag("env", "list")],
  ["--name", fastFlag("name", "value")],
]);

Deno.test("readFlags() reads values, lists, --k=v and clusters up to the first argument, and says why it stops", () => {
  const into: Record<string, unknown> = {};
  assert.equal(
    readFlags(["-di", "-e", "A=1", "--name=web", "-e", "B", "img", "-d"], 0, TABLE, into, {
      clusters: true,
    }),
    6,
  );
  assert.deepEqual(into, { detach: true, interactive: true, env: ["A=1", "B"], name: "web" });
  const cases: [string[], string][] = [
    [["--nope"], "Unknown option --nope"],
    [["--nope=1"], "Unknown option --nope"],
    [["-dx"], "Unknown option -dx"],
    [["-de"], "Unknown option -de"],
    [["--name"], "Option --name needs a value"],
    [["--detach=1"], "Unknown option --detach"],
  ];
  for (const [args, why] of cases) {
    let heard = "";
    assert.equal(readFlags(args, 0, TABLE, {}, { clusters: true, explain: (w) => heard = w }), undefined);
    assert.equal(heard, why, args.join(" "));
  }
  // Without clusters, -di is not read.
  assert.equal(readFlags(["-di"], 0, TABLE, {}), undefined);
});
