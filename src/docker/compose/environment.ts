/**
 * Compose's variables: `${VAR}` interpolation with the shell's default and error forms, and the
 * `.env` / `env_file` format (KEY=VALUE lines, quotes, comments, `export`), as compose-go reads them.
 */

export type Lookup = (name: string) => string | undefined;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

export interface InterpolateOptions {
  /** Told about each variable that is not set and has no default (docker compose warns, then uses ""). */
  readonly onUnset?: (name: string) => void;
}

/**
 * Replaces `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
 * `${VAR:+replacement}`, `${VAR+replacement}`; `$$` is a literal `$`. Defaults may hold further
 * variables. Throws an Error (without position: the caller adds it) on a malformed template or `?`.
 */
export function interpolate(text: string, lookup: Lookup, options: InterpolateOptions = {}): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== "$") {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
      continue;
    }
    if (next === "{") {
      const end = closingBrace(text, i + 2);
      if (end < 0) throw new Error(`Invalid interpolation "${text.slice(i)}": missing "}"`);
      out += expand(text.slice(i + 2, end), lookup, options);
      i = end + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (!m) {
      throw new Error(
        `Invalid interpolation in "${text}": a "$" must start a variable; write "$$" for a literal "$"`,
      );
    }
    out += valueOf(m[0], lookup, options);
    i += 1 + m[0].length;
  }
  return out;
}

function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === "$" && text[i + 1] === "$") i++;
    else if (text[i] === "$" && text[i + 1] === "{") {
      depth++;
      i++;
    } else if (text[i] === "}" && --depth === 0) return i;
  }
  return -1;
}

function valueOf(name: string, lookup: Lookup, options: InterpolateOptions): string {
  const v = lookup(name);
  if (v === undefined) {
    options.onUnset?.(name);
    return "";
  }
  return v;
}

/** The inside of `${…}`. */
function expand(inner: string, lookup: Lookup, options: InterpolateOptions): string {
  const m = NAME.exec(inner);
  if (!m) throw new Error(`Invalid interpolation "\${${inner}}": a variable name must come first`);
  const name = m[0];
  const rest = inner.slice(name.length);
  if (rest === "") return valueOf(name, lookup, options);
  const op = /^(:?[-?+])/.exec(rest)?.[1];
  if (!op) throw new Error(`Invalid interpolation "\${${inner}}": unknown operator after "${name}"`);
  const arg = () => interpolate(rest.slice(op.length), lookup, options);
  const value = lookup(name);
  const colon = op.startsWith(":");
  const missing = value === undefined || (colon && value === "");
  switch (op.slice(-1)) {
    case "-":
      return missing ? arg() : value!;
    case "+":
      return missing ? "" : arg();
    default: {
      if (!missing) return value!;
      const why = arg();
      throw new Error(`Required variable "${name}" is missing a value${why ? `: ${why}` : ""}`);
    }
  }
}

/**
 * Parses an env file (`.env`, `env_file:`) into its variables, in order. Values may use variables set
 * earlier in the file and those of `lookup`; single-quoted values are literal.
 */
export function parseEnvFile(text: string, lookup: Lookup = () => undefined): Map<string, string> {
  const vars = new Map<string, string>();
  const scope: Lookup = (n) => vars.get(n) ?? lookup(n);
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (!m) throw new Error(`Line ${n + 1}: expected KEY=VALUE, got "${line}"`);
    const key = m[1]!;
    if (m[2] === undefined) {
      // A bare KEY takes its value from the environment, as compose's env_file does.
      const v = lookup(key);
      if (v !== undefined) vars.set(key, v);
      continue;
    }
    let raw = m[2];
    let value: string;
    try {
      if (raw.startsWith("'")) {
        const end = raw.indexOf("'", 1);
        if (end < 0) throw new Error("unterminated single quote");
        value = raw.slice(1, end);
      } else if (raw.startsWith('"')) {
        let end = 1;
        while (end < raw.length && raw[end] !== '"') end += raw[end] === "\\" ? 2 : 1;
        if (end >= raw.length) throw new Error("unterminated double quote");
        const unescaped = raw.slice(1, end).replace(/\\(.)/g, (_, ch: string) => ESCAPES[ch] ?? `\\${ch}`);
        value = interpolate(unescaped, scope);
      } else {
        raw = raw.replace(/\s+#.*$/, "").trim();
        value = interpolate(raw, scope);
      }
    } catch (err) {
      throw new Error(`Line ${n + 1}: ${(err as Error).message}`);
    }
    vars.set(key, value);
  }
  return vars;
}

const ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\", $: "$$" };
