import assert from "node:assert/strict";
import { BerthError } from "../../base/errors.ts";
import { type Adaptor, labelsAdaptor, objectAdaptor, parseFilter, parseFilters } from "./mod.ts";

interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}

// containerd's pkg/filters/filter_test.go corpus.
const corpus: Entry[] = [
  { name: "foo", labels: { foo: "true" } },
  { name: "bar" },
  { name: "foo", labels: { foo: "present", "more complex label": "present" } },
  { name: "bar", labels: { bar: "true" } },
  { name: "fooer", labels: { 'more complex label with \\ and "': "present" } },
  { name: "fooer", labels: { 'more complex label with \\ and ".post': "present" } },
  { name: "baz", other: "too complex, yo" },
  { name: "bazo", other: "abc" },
  { name: "compound", labels: { foo: "omg_asdf.asdf-qwer" } },
];

const adapt = (e: Entry): Adaptor =>
  objectAdaptor({ name: e.name, other: e.other, labels: labelsAdaptor(e.labels) });

function matching(input: string): number[] {
  const f = parseFilter(input);
  return corpus.flatMap((e, i) => (f.match(adapt(e)) ? [i] : []));
}

const all = corpus.map((_, i) => i);

const cases: [string, string, number[]][] = [
  ["Empty", "", all],
  ["Present", "name", all],
  ["LabelPresent", "labels.foo", [0, 2, 8]],
  ["NameAndLabelPresent", "labels.foo,name", [0, 2, 8]],
  ["LabelValue", "labels.foo==true", [0]],
  ["LabelValuePunctuated", "labels.foo==omg_asdf.asdf-qwer", [8]],
  ["Name", "name==bar", [1, 3]],
  ["NameNotEqual", "name!=bar", [0, 2, 4, 5, 6, 7, 8]],
  ["NameAndLabelPresent2", "name==bar,labels.bar", [3]],
  ["QuotedValue", 'other=="too complex, yo"', [6]],
  ["RegexpValue", "other~=[abc]+,name!=foo", [6, 7]],
  ["RegexpQuotedValue", "other~=/[abc]+/,name!=foo", [6, 7]],
  ["RegexpQuotedValueBraces", "other~=/[abc]{1,2}/,name!=foo", [6, 7]],
  ["RegexpQuotedValueGarbage", 'other~=/[abc]{0,1}"\\//,name!=foo', []],
  ["NameAndLabelValue", "name==bar,labels.bar==true", [3]],
  ["NameAndLabelValueNoMatch", "name==bar,labels.bar==wrong", []],
  ["LabelQuotedFieldPathPresent", 'name==foo,labels."more complex label"', [2]],
  ["LabelQuotedFieldPathPresentWithQuoted", 'labels."more complex label with \\\\ and \\""==present', [4]],
  [
    "LabelQuotedFieldPathPresentWithQuotedEmbed",
    'labels."more complex label with \\\\ and \\"".post==present',
    [5],
  ],
  ["SpacesAroundOperator", "name == bar", [1, 3]],
];

for (const [name, input, expected] of cases) {
  Deno.test(`parseFilter() ${name}: ${input}`, () => {
    assert.deepEqual(matching(input), expected);
  });
}

const errors: [string, string, RegExp][] = [
  [
    "LabelValueNoAltQuoting",
    "labels.|foo|==omg_asdf.asdf-qwer",
    /invalid quote encountered at position 7 \(\[labels\. >\|\|\|< foo/,
  ],
  [
    "LabelQuotedFieldPathPresentWithQuotedEmbedInvalid",
    'labels.?"more complex label with \\\\ and \\"".post==present',
    /expected field or quoted at position 7/,
  ],
  ["TrailingComma", "name==foo,", /expected field or quoted at end of input/],
  ["TrailingFieldSeparator", "labels.", /expected field or quoted at end of input/],
  ["MissingValue", "image~=,id?=?fbaq", /expected value or quoted at position 7 \(\[image~= >\|,\|< id/],
  ["FieldQuotedLiteralNotTerminated", "labels.ns/key==value", /quoted literal not terminated at position 9/],
  ["ValueQuotedLiteralNotTerminated", "labels.key==/value", /quoted literal not terminated at position 12/],
  ["UnsupportedOperator", "name=!x", /unsupported operator "=!" at position 4/],
  ["UnexpectedInput", 'name=="a"b', /unexpected input: b at position 9/],
  ["BadRegexp", "name~=[a", /Invalid regular expression/],
  ["IllegalEscape", 'labels."a\\qb"', /illegal escape sequence/],
];

for (const [name, input, pattern] of errors) {
  Deno.test(`parseFilter() rejects ${name}: ${input}`, () => {
    assert.throws(() => parseFilter(input), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, "invalid_argument");
      assert.match(err.message, pattern);
      if (name !== "BadRegexp") assert.ok(err.message.includes(JSON.stringify(input)), err.message);
      return true;
    });
  });
}

Deno.test("parseFilters() ORs its strings and an empty list matches everything", () => {
  const f = parseFilters(["name==bar", "labels.foo==true"]);
  assert.deepEqual(corpus.flatMap((e, i) => (f.match(adapt(e)) ? [i] : [])), [0, 1, 3]);
  assert.ok(parseFilters([]).match(() => undefined));
});

Deno.test("parseFilters() rejects the list when any string is malformed", () => {
  assert.throws(() => parseFilters(["name==bar", "name=="]), /Invalid filter "name=="/);
});

Deno.test("labelsAdaptor() treats dotted and quoted label keys alike", () => {
  const a = objectAdaptor({ labels: labelsAdaptor({ "a.b": "1", "": "x" }) });
  assert.ok(parseFilter("labels.a.b==1").match(a));
  assert.ok(parseFilter('labels."a.b"==1').match(a));
  assert.ok(!parseFilter("labels").match(a));
});

Deno.test("objectAdaptor() nests adaptors and treats empty strings as absent", () => {
  const a = objectAdaptor({
    name: "",
    target: objectAdaptor({ digest: "sha256:abc", mediatype: "application/json" }),
  });
  assert.ok(!parseFilter("name").match(a));
  assert.ok(parseFilter("name!=x").match(a));
  assert.ok(parseFilter("target.digest==sha256:abc,target.mediatype~=json$").match(a));
  assert.ok(!parseFilter("target.mediatype==x").match(a));
});

Deno.test("parseFilter() decodes escapes in quoted values and accepts RE2 inline flags", () => {
  const a = objectAdaptor({ name: "A\tB", other: "Hello" });
  assert.ok(parseFilter('name=="A\\tB"').match(a));
  assert.ok(parseFilter('name=="\\x41\\u0009\\102"').match(a));
  assert.ok(parseFilter("other~=(?i)^hello$").match(a));
  assert.ok(!parseFilter("other~=^hello$").match(a));
});
