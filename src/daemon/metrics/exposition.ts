/**
 * Prometheus' exposition formats, written as client_golang's expfmt writes them: text 0.0.4 and
 * OpenMetrics 1.0.0, chosen from the Accept header as promhttp does with OpenMetrics enabled. Numbers are
 * printed as Go's strconv.FormatFloat(v, 'g', -1, 64), so output compares line by line with containerd's.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "untyped";

export interface Sample {
  /** Label pairs; written sorted by name, as client_golang sorts a Desc's labels. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** For histograms: `_bucket`, `_sum` or `_count`. */
  readonly suffix?: string;
}

export interface Family {
  /** The name as client_golang registers it: counters end in `_total`. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: Sample[];
}

export type Format = "text" | "openmetrics";

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const OPENMETRICS_0_0_1_CONTENT_TYPE = "application/openmetrics-text; version=0.0.1; charset=utf-8";

/**
 * expfmt.NegotiateIncludingOpenMetrics: the first acceptable type by quality (wildcards last) wins;
 * protobuf, which Berth does not write, is passed over; anything else gets text 0.0.4.
 */
export function negotiate(accept: string | null): { format: Format; contentType: string } {
  const text = { format: "text" as const, contentType: TEXT_CONTENT_TYPE };
  for (const a of parseAccept(accept ?? "")) {
    const version = a.params.get("version") ?? "";
    if (a.type === "text/plain" && (version === "0.0.4" || version === "")) return text;
    if (a.type === "application/openmetrics-text" && ["0.0.1", "1.0.0", ""].includes(version)) {
      return {
        format: "openmetrics",
        contentType: version === "0.0.1" ? OPENMETRICS_0_0_1_CONTENT_TYPE : OPENMETRICS_CONTENT_TYPE,
      };
    }
  }
  return text;
}

interface Accepted {
  readonly type: string;
  readonly q: number;
  readonly params: Map<string, string>;
}

/** goautoneg.ParseAccept: media ranges with their parameters, by quality and then specificity. */
function parseAccept(header: string): Accepted[] {
  const out: Accepted[] = [];
  for (const part of header.split(",")) {
    const [range, ...rest] = part.split(";").map((s) => s.trim());
    if (!range) continue;
    const params = new Map<string, string>();
    let q = 1;
    for (const p of rest) {
      const eq = p.indexOf("=");
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim();
      const v = p.slice(eq + 1).trim().replace(/^"|"$/g, "");
      if (k === "q") q = Number(v) || 0;
      else params.set(k, v);
    }
    out.push({ type: range.toLowerCase(), q, params });
  }
  const wild = (a: Accepted) => (a.type.startsWith("*/") ? 2 : a.type.endsWith("/*") ? 1 : 0);
  return out.filter((a) => a.q > 0).sort((a, b) => b.q - a.q || wild(a) - wild(b));
}

/** Writes families sorted by name, samples sorted by their label values, as client_golang's Gather does. */
export function render(families: readonly Family[], format: Format): string {
  const out: string[] = [];
  const sorted = families.filter((f) => f.samples.length > 0).sort((a, b) => compare(a.name, b.name));
  for (const f of sorted) {
    if (format === "text") writeText(f, out);
    else writeOpenMetrics(f, out);
  }
  if (format === "openmetrics") out.push("# EOF");
  return out.join("\n") + "\n";
}

function writeText(f: Family, out: string[]): void {
  out.push(`# HELP ${f.name} ${escapeHelp(f.help, false)}`);
  out.push(`# TYPE ${f.name} ${f.type}`);
  for (const s of sortedSamples(f)) {
    out.push(`${f.name}${s.suffix ?? ""}${labelText(s.labels)} ${formatFloat(s.value)}`);
  }
}

/**
 * OpenMetrics names a counter family without `_total` and writes its samples with it; `untyped` is
 * `unknown`; floats always show a decimal point or exponent (expfmt's writeOpenMetricsFloat).
 */
function writeOpenMetrics(f: Family, out: string[]): void {
  const counter = f.type === "counter";
  const name = counter && f.name.endsWith("_total") ? f.name.slice(0, -"_total".length) : f.name;
  out.push(`# HELP ${name} ${escapeHelp(f.help, true)}`);
  out.push(`# TYPE ${name} ${f.type === "untyped" ? "unknown" : f.type}`);
  for (const s of sortedSamples(f)) {
    const suffix = counter ? "_total" : s.suffix ?? "";
    const labels = s.suffix === "_bucket" && "le" in s.labels
      ? { ...s.labels, le: openMetricsFloat(leValue(s.labels.le)) }
      : s.labels;
    out.push(`${name}${suffix}${labelText(labels)} ${openMetricsFloat(s.value)}`);
  }
}

/** Series in label-value order; a histogram's buckets, sum and count stay together, buckets by `le`. */
function sortedSamples(f: Family): Sample[] {
  const key = (s: Sample) =>
    Object.keys(s.labels).filter((k) => k !== "le").sort().map((k) => s.labels[k]).join("\u0000");
  const part = (s: Sample) => (s.suffix === "_sum" ? 1 : s.suffix === "_count" ? 2 : 0);
  const le = (s: Sample) => leValue(s.labels.le);
  return [...f.samples].sort((a, b) => compare(key(a), key(b)) || part(a) - part(b) || le(a) - le(b));
}

function leValue(le: string | undefined): number {
  return le === undefined ? 0 : le === "+Inf" ? Infinity : Number(le);
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort((a, b) => (a === "le" ? 1 : b === "le" ? -1 : compare(a, b)));
  if (names.length === 0) return "";
  return `{${names.map((n) => `${n}="${escapeLabel(labels[n]!)}"`).join(",")}}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string, quotes: boolean): string {
  const s = v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
  return quotes ? s.replace(/"/g, '\\"') : s;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Go's strconv.FormatFloat(v, 'g', -1, 64): shortest digits, exponent form below 1e-4 and from 1e6 on. */
export function formatFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mantissa, expText] = v.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  // Go decides with precision 6 when asked for the shortest form.
  if (exp < -4 || exp >= 6) {
    return `${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return String(v);
}

function openMetricsFloat(v: number): string {
  const s = formatFloat(v);
  return /[e.]|Inf|NaN/.test(s) ? s : `${s}.0`;
}
