/**
 * Go's time.Duration text, as containerd's config and ctr's flags use it: parsed to milliseconds
 * (time.ParseDuration: "300ms", "-1.5h", "2h45m"; "0" alone needs no unit) and written back as
 * Duration.String() writes it ("0s", "100ms", "1.5s", "1m30s"). One parser for the daemon's config, the CLI's
 * flags and compose files.
 */

const units: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5
  "μs": 1e-3, // U+03BC
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go's time.ParseDuration, in milliseconds: a signed sequence of decimal numbers each with a unit
 * (ns, us, µs, ms, s, m, h), such as "300ms", "-1.5h" or "2h45m"; "0" alone needs no unit.
 */
export function parseGoDuration(text: string): number {
  const bad = (why: string) => new Error(`Invalid duration ${JSON.stringify(text)}: ${why}`);
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad("it is empty");
  const part = /^(\d*)(?:\.(\d*))?([^\d.]+)/;
  let total = 0;
  while (s !== "") {
    const m = part.exec(s);
    if (!m) throw bad(/^[\d.]+$/.test(s) ? "missing unit" : "expected a number");
    if (m[1] === "" && (m[2] ?? "") === "") throw bad("expected a number");
    const unit = units[m[3]!];
    if (unit === undefined) throw bad(`unknown unit ${JSON.stringify(m[3])}`);
    total += Number(`${m[1] || "0"}.${m[2] || "0"}`) * unit;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** A duration in milliseconds as Go's time.Duration.String() writes it: "0s", "100ms", "1.5s", "1m30s". */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1) return `${sign}${trim(rest * 1000)}µs`;
  if (rest < 1000) return `${sign}${trim(rest)}ms`;
  let out = "";
  if (rest >= 3_600_000) {
    out += `${Math.floor(rest / 3_600_000)}h`;
    rest %= 3_600_000;
  }
  if (out !== "" || rest >= 60_000) {
    out += `${Math.floor(rest / 60_000)}m`;
    rest %= 60_000;
  }
  return `${sign}${out}${trim(rest / 1000)}s`;
}

function trim(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}
