import assert from "node:assert/strict";
import { formatFloat, negotiate, render } from "./exposition.ts";
import { Histogram } from "./histogram.ts";

Deno.test("formatFloat() prints numbers as Go's strconv.FormatFloat(v, 'g', -1, 64)", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [0.005, "0.005"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [123456, "123456"],
    [1234567, "1.234567e+06"],
    [1e6, "1e+06"],
    [10485760, "1.048576e+07"],
    [2 ** 64 - 1, "1.8446744073709552e+19"],
    [-2.5, "-2.5"],
    [Infinity, "+Inf"],
    [NaN, "NaN"],
  ];
  for (const [v, s] of cases) assert.equal(formatFloat(v), s, String(v));
});

Deno.test("negotiate() picks OpenMetrics or text as promhttp does, passing over protobuf", () => {
  assert.equal(negotiate(null).format, "text");
  assert.equal(negotiate("*/*").format, "text");
  assert.equal(negotiate("application/openmetrics-text; version=1.0.0").format, "openmetrics");
  assert.equal(
    negotiate("application/openmetrics-text;version=0.0.1").contentType,
    "application/openmetrics-text; version=0.0.1; charset=utf-8",
  );
  assert.equal(negotiate("application/openmetrics-text;version=2.0.0,text/plain;q=0.5").format, "text");
  assert.equal(
    negotiate("text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;q=0.9").format,
    "openmetrics",
  );
  assert.equal(
    negotiate(
      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7," +
        "text/plain;version=0.0.4;q=0.3",
    ).contentType,
    "text/plain; version=0.0.4; charset=utf-8",
  );
});

Deno.test("render() writes sorted families and labels, and OpenMetrics' counter names, floats and # EOF", () => {
  const h = new Histogram([0.5, 1]);
  h.observe(0.25);
  h.observe(2);
  const families = [
    { name: "b_seconds", help: "B.", type: "histogram" as const, samples: h.samples({ m: "x" }) },
    {
      name: "a_total",
      help: 'A "quoted" \\ help',
      type: "counter" as const,
      samples: [{ labels: { z: "1", y: 'q"\n' }, value: 3 }, { labels: { z: "0", y: "" }, value: 1 }],
    },
    { name: "empty", help: "Left out.", type: "gauge" as const, samples: [] },
  ];
  assert.equal(
    render(families, "text"),
    `# HELP a_total A "quoted" \\\\ help
# TYPE a_total counter
a_total{y="",z="0"} 1
a_total{y="q\\"\\n",z="1"} 3
# HELP b_seconds B.
# TYPE b_seconds histogram
b_seconds_bucket{m="x",le="0.5"} 1
b_seconds_bucket{m="x",le="1"} 1
b_seconds_bucket{m="x",le="+Inf"} 2
b_seconds_sum{m="x"} 2.25
b_seconds_count{m="x"} 2
`,
  );
  assert.equal(
    render(families, "openmetrics"),
    `# HELP a A \\"quoted\\" \\\\ help
# TYPE a counter
a_total{y="",z="0"} 1.0
a_total{y="q\\"\\n",z="1"} 3.0
# HELP b_seconds B.
# TYPE b_seconds histogram
b_seconds_bucket{m="x",le="0.5"} 1.0
b_seconds_bucket{m="x",le="1.0"} 1.0
b_seconds_bucket{m="x",le="+Inf"} 2.0
b_seconds_sum{m="x"} 2.25
b_seconds_count{m="x"} 2.0
# EOF
`,
  );
});
