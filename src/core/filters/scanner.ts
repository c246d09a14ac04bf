/**
 * The tokenizer for containerd's filter syntax (pkg/filters/scanner.go). It works on code points;
 * positions are UTF-16 offsets into the input, which is what error messages point at.
 */

export const EOF = -1;
export const ILLEGAL = -2;

export type TokenKind = "eof" | "quoted" | "value" | "field" | "separator" | "operator" | "illegal" | "other";

export interface Token {
  readonly pos: number;
  readonly kind: TokenKind;
  readonly text: string;
}

export class Scanner {
  readonly input: string;
  /** Start of the current code point. */
  pos = 0;
  /** End of the current code point (start of the next). */
  ppos = 0;
  /** Set after an operator: the next bare word is a value, which may hold more characters than a field. */
  #value = false;
  err = "";

  constructor(input: string) {
    this.input = input;
  }

  next(): number {
    if (this.ppos >= this.input.length) {
      this.pos = this.input.length;
      return EOF;
    }
    this.pos = this.ppos;
    const cp = this.input.codePointAt(this.ppos);
    if (cp === undefined) return EOF;
    this.ppos += cp > 0xffff ? 2 : 1;
    // A lone surrogate is the JS analogue of Go's invalid UTF-8.
    if (cp >= 0xd800 && cp <= 0xdfff) {
      this.#error("rune error");
      return ILLEGAL;
    }
    if (cp === 0) {
      this.#error("unexpected null");
      return ILLEGAL;
    }
    return cp;
  }

  peek(): number {
    const { pos, ppos } = this;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }

  scan(): Token {
    let ch = this.next();
    let pos = this.pos;
    for (;;) {
      if (ch === EOF) return { pos: this.pos, kind: "eof", text: "" };
      if (ch === ILLEGAL) return { pos: this.pos, kind: "illegal", text: "" };
      if (isQuote(ch)) {
        const ok = this.#scanQuoted(ch);
        return { pos, kind: ok ? "quoted" : "illegal", text: this.input.slice(pos, this.ppos) };
      }
      if (isSeparator(ch)) {
        this.#value = false;
        return { pos, kind: "separator", text: this.input.slice(pos, this.ppos) };
      }
      if (isOperator(ch)) {
        while (isOperator(this.peek())) this.next();
        this.#value = true;
        return { pos, kind: "operator", text: this.input.slice(pos, this.ppos) };
      }
      if (isSpace(ch)) {
        ch = this.next();
        pos = this.pos;
        continue;
      }
      if (this.#value) {
        while (isValueChar(this.peek())) this.next();
        this.#value = false;
        return { pos, kind: "value", text: this.input.slice(pos, this.ppos) };
      }
      if (isField(ch)) {
        while (isField(this.peek())) this.next();
        return { pos, kind: "field", text: this.input.slice(pos, this.ppos) };
      }
      return { pos: this.pos, kind: "other", text: String.fromCodePoint(ch) };
    }
  }

  #scanQuoted(quote: number): boolean {
    let legal = true;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === 0x0a || ch < 0) {
        this.#error("quoted literal not terminated");
        return false;
      }
      if (ch === 0x5c) {
        const r = this.#scanEscape(quote);
        ch = r.ch;
        if (!r.legal) legal = false;
      } else {
        ch = this.next();
      }
    }
    return legal;
  }

  #scanEscape(quote: number): { ch: number; legal: boolean } {
    const ch = this.next();
    const c = ch >= 0 ? String.fromCodePoint(ch) : "";
    if ((c !== "" && "abfnrtv\\".includes(c)) || ch === quote) return { ch: this.next(), legal: true };
    if (c >= "0" && c <= "7" && c !== "") return this.#scanDigits(ch, 8, 3);
    if (c === "x") return this.#scanDigits(this.next(), 16, 2);
    if (c === "u") return this.#scanDigits(this.next(), 16, 4);
    if (c === "U") return this.#scanDigits(this.next(), 16, 8);
    this.#error("illegal escape sequence");
    return { ch, legal: false };
  }

  #scanDigits(ch: number, base: number, n: number): { ch: number; legal: boolean } {
    while (n > 0 && digitVal(ch) < base) {
      ch = this.next();
      n--;
    }
    if (n > 0) {
      this.#error("illegal numeric escape sequence");
      return { ch, legal: false };
    }
    return { ch, legal: true };
  }

  #error(msg: string): void {
    if (this.err === "") this.err = msg;
  }
}

function digitVal(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30;
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x61 + 10;
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x41 + 10;
  return 16;
}

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isField = (c: number) => c === 0x5f || isAlpha(c) || isDigit(c);
const isOperator = (c: number) => c === 0x3d || c === 0x21 || c === 0x7e; // = ! ~
// `/` and `|` quote regular expressions; `"` quotes anything.
const isQuote = (c: number) => c === 0x2f || c === 0x7c || c === 0x22;
const isSeparator = (c: number) => c === 0x2c || c === 0x2e; // , .
const isSpace = (c: number) => c >= 0 && /\s/u.test(String.fromCodePoint(c));
const isValueChar = (c: number) =>
  c >= 0 && c !== 0x2c && !isSpace(c) && /[\p{L}\p{N}\p{P}\p{S}\p{M}\p{Zs}]/u.test(String.fromCodePoint(c));
