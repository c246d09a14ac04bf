import assert from "node:assert/strict";
import { interpolate, parseEnvFile } from "./environment.ts";

const vars: Record<string, string> = { SET: "value", EMPTY: "" };
const lookup = (n: string) => vars[n];

Deno.test("interpolate() replaces $VAR and ${VAR} and keeps $$ as a literal $", () => {
  assert.equal(interpolate("a $SET ${SET}b $$SET $$$SET", lookup), "a value valueb $SET $value");
});

Deno.test("interpolate() applies :- and - defaults to unset and empty variables as the shell does", () => {
  assert.equal(interpolate("${UNSET:-d} ${EMPTY:-d} ${SET:-d}", lookup), "d d value");
  assert.equal(interpolate("${UNSET-d}|${EMPTY-d}|${SET-d}", lookup), "d||value");
  assert.equal(interpolate("${UNSET:-${SET}-x}", lookup), "value-x");
  assert.equal(interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", lookup), "alt||alt");
});

Deno.test("interpolate() fails on :? and ? with the message of the file", () => {
  assert.throws(
    () => interpolate("${EMPTY:?must be set}", lookup),
    /"EMPTY" is missing a value: must be set/,
  );
  assert.equal(interpolate("${EMPTY?must be set}", lookup), "");
  assert.throws(() => interpolate("${UNSET?oops}", lookup), /"UNSET" is missing a value: oops/);
});

Deno.test("interpolate() reports unset variables and malformed templates", () => {
  const unset: string[] = [];
  assert.equal(interpolate("x${NOPE}y", lookup, { onUnset: (n) => unset.push(n) }), "xy");
  assert.deepEqual(unset, ["NOPE"]);
  assert.throws(() => interpolate("${SET", lookup), /missing "}"/);
  assert.throws(() => interpolate("cost $5", lookup), /write "\$\$"/);
  assert.throws(() => interpolate("${SET%x}", lookup), /unknown operator/);
});

Deno.test("parseEnvFile() reads quotes, comments, export and earlier variables", () => {
  const text = [
    "# comment",
    "export A=1",
    "B = two words # trailing comment",
    "C='literal $A # not a comment'",
    'D="line\\nbreak ${A}"',
    "E=${A}-${SET}",
    "EMPTY=",
    "",
  ].join("\n");
  assert.deepEqual(Object.fromEntries(parseEnvFile(text, lookup)), {
    A: "1",
    B: "two words",
    C: "literal $A # not a comment",
    D: "line\nbreak 1",
    E: "1-value",
    EMPTY: "",
  });
  assert.throws(() => parseEnvFile("A=1\nnot valid!", lookup), /Line 2: expected KEY=VALUE/);
});
