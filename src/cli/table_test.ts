import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { formatGoTime } from "./table.ts";

Deno.test("formatGoTime() prints a Timestamp as Go's JSON time, nanoseconds included", () => {
  const at = (seconds: bigint, nanos: number) => formatGoTime(create(TimestampSchema, { seconds, nanos }));
  assert.equal(at(1796606078n, 549051373), "2026-12-07T01:14:38.549051373Z");
  assert.equal(at(1796606078n, 500000000), "2026-12-07T01:14:38.5Z");
  assert.equal(at(1796606078n, 0), "2026-12-07T01:14:38Z");
  assert.equal(formatGoTime(undefined), "0001-01-01T00:00:00Z");
});
