import { invalidArgument } from "../../base/errors.ts";
import { EOF, Scanner } from "./scanner.ts";

export type Operator = "present" | "==" | "!=" | "~=";

export interface Selector {
  readonly fieldpath: readonly string[];
  readonly operator: Operator;
  readonly value: string;
  readonly re?: RegExp;
}

class ParseError extends Error {
  constructor(readonly input: string, readonly pos: number, readonly detail: string) {
    super(detail);
  }
}

/**
 * Parses one filter string (comma-separated selectors, all of which must match), following
 * containerd's grammar:
 *
 *   selectors := selector ("," selector)*
 *   selector  := fieldpath (operator value)
 *   fieldpath := field ('.' field)*
 *   field     := quoted | [A-Za-z0-9_]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+
 */
export function parseSelectors(input: string): Selector[] {
  const p = new Parser(input);
  try {
    return p.selectors();
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    throw invalidArgument(`Invalid filter ${JSON.stringify(input)}: ${describe(err)}`);
  }
}

function describe(err: ParseError): string {
  const { input, pos, detail } = err;
  if (pos < input.length) {
    const cp = input.codePointAt(pos)!;
    const width = cp > 0xffff ? 2 : 1;
    return `${detail} at position ${pos} ([${input.slice(0, pos)} >|${input.slice(pos, pos + width)}|< ${
      input.slice(pos + width)
    }])`;
  }
  return `${detail} at end of input`;
}

class Parser {
  readonly #input: string;
  readonly #s: Scanner;

  constructor(input: string) {
    this.#input = input;
    this.#s = new Scanner(input);
  }

  selectors(): Selector[] {
    const out = [this.#selector()];
    for (;;) {
      const ch = this.#s.peek();
      if (ch === 0x2c) {
        const tok = this.#s.scan();
        if (tok.kind !== "separator") throw this.#err(tok.pos, "expected a separator");
        out.push(this.#selector());
      } else if (ch === EOF) {
        return out;
      } else {
        throw this.#err(this.#s.ppos, `unexpected input: ${ch >= 0 ? String.fromCodePoint(ch) : "?"}`);
      }
    }
  }

  #selector(): Selector {
    const fieldpath = this.#fieldpath();
    const next = this.#s.peek();
    if (next === 0x2c || next === EOF) {
      return { fieldpath, operator: "present", value: "" };
    }
    const operator = this.#operator();
    const value = this.#value(operator === "~=");
    if (operator !== "~=") return { fieldpath, operator, value };
    return { fieldpath, operator, value, re: compileRegexp(value) };
  }

  #fieldpath(): string[] {
    const out = [this.#field()];
    while (this.#s.peek() === 0x2e) {
      const tok = this.#s.scan();
      if (tok.kind !== "separator") throw this.#err(tok.pos, "expected a field separator (`.`)");
      out.push(this.#field());
    }
    return out;
  }

  #field(): string {
    const tok = this.#s.scan();
    switch (tok.kind) {
      case "field":
        return tok.text;
      case "quoted":
        return this.#unquote(tok.pos, tok.text, false);
      case "illegal":
        throw this.#err(tok.pos, this.#s.err);
      default:
        throw this.#err(tok.pos, "expected field or quoted");
    }
  }

  #operator(): Operator {
    const tok = this.#s.scan();
    if (tok.kind === "operator") {
      if (tok.text === "==" || tok.text === "!=" || tok.text === "~=") return tok.text;
      throw this.#err(tok.pos, `unsupported operator ${JSON.stringify(tok.text)}`);
    }
    if (tok.kind === "illegal") throw this.#err(tok.pos, this.#s.err);
    throw this.#err(tok.pos, 'expected an operator ("=="|"!="|"~=")');
  }

  #value(allowAltQuotes: boolean): string {
    const tok = this.#s.scan();
    switch (tok.kind) {
      case "value":
      case "field":
        return tok.text;
      case "quoted":
        return this.#unquote(tok.pos, tok.text, allowAltQuotes);
      case "illegal":
        throw this.#err(tok.pos, this.#s.err);
      default:
        throw this.#err(tok.pos, "expected value or quoted");
    }
  }

  #unquote(pos: number, text: string, allowAlts: boolean): string {
    if (!allowAlts && text[0] !== '"') throw this.#err(pos, "invalid quote encountered");
    try {
      return unquote(text);
    } catch (err) {
      throw this.#err(pos, `unquoting failed: ${(err as Error).message}`);
    }
  }

  #err(pos: number, detail: string): ParseError {
    return new ParseError(this.#input, pos, detail);
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
};

/** Go string-literal unquoting, where `/` and `|` also act as double quotes (for regular expressions). */
export function unquote(s: string): string {
  const quote = s[0];
  if (s.length < 2 || quote !== s[s.length - 1]) throw new Error("quote syntax error");
  if (quote !== '"' && quote !== "/" && quote !== "|") throw new Error("quote syntax error");
  const body = s.slice(1, -1);
  if (body.includes("\n")) throw new Error("quote syntax error");
  let out = "";
  for (let i = 0; i < body.length;) {
    const c = body[i]!;
    if (c === quote) throw new Error("quote syntax error");
    if (c !== "\\") {
      out += c;
      i++;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) throw new Error("quote syntax error");
    i += 2;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
    } else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (hex.length < n || !/^[0-9a-fA-F]+$/.test(hex)) throw new Error("quote syntax error");
      const v = parseInt(hex, 16);
      if (v > 0x10ffff) throw new Error("quote syntax error");
      out += String.fromCodePoint(v);
      i += n;
    } else if (e >= "0" && e <= "7") {
      const oct = e + body.slice(i, i + 2);
      if (!/^[0-7]{3}$/.test(oct)) throw new Error("quote syntax error");
      const v = parseInt(oct, 8);
      if (v > 255) throw new Error("quote syntax error");
      out += String.fromCharCode(v);
      i += 2;
    } else if ((e === '"' || e === "/" || e === "|") && e === quote) {
      out += e;
    } else {
      throw new Error("quote syntax error");
    }
  }
  return out;
}

/**
 * Compiles a Go (RE2) regular expression as a JS one. A leading `(?flags)` group, common in RE2 and
 * unsupported by JS, becomes JS flags. An invalid expression fails the parse rather than silently
 * matching nothing as containerd does, so that callers learn about the mistake.
 */
function compileRegexp(source: string): RegExp {
  let flags = "";
  const m = /^\(\?([imsU]+)\)/.exec(source);
  if (m) {
    for (const f of m[1]!) if (f !== "U" && !flags.includes(f)) flags += f;
    source = source.slice(m[0].length);
  }
  try {
    return new RegExp(source, flags + "u");
  } catch {
    try {
      return new RegExp(source, flags);
    } catch (err) {
      throw invalidArgument(
        `Invalid regular expression ${JSON.stringify(source)} in filter: ${(err as Error).message}`,
      );
    }
  }
}
