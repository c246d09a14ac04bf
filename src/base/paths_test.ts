import assert from "node:assert/strict";
import { joinPath } from "./paths.ts";

Deno.test("joinPath joins and cleans as Go's filepath.Join", () => {
  const cases: [string[], string][] = [
    [["/var/lib/berth/", "ingest"], "/var/lib/berth/ingest"],
    [["/run", "berth", "s"], "/run/berth/s"],
    [["/a/b", "../c"], "/a/c"],
    [["/", "..", "x"], "/x"],
    [["a", "./b", ""], "a/b"],
    [["a", "..", ".."], ".."],
    [["a", ".."], "."],
    [["", ""], ""],
    [["/a//b/"], "/a/b"],
  ];
  for (const [parts, want] of cases) assert.equal(joinPath(...parts), want, JSON.stringify(parts));
});
