/**
 * Generates seccomp_default.ts, containerd's runtime/default seccomp profile (contrib/seccomp/
 * seccomp_default.go) as data, so the ~400 syscall names are copied by a program rather than typed by
 * hand. It reads the Go source, parses the parts of Go it uses (composite literals, if, switch, for range,
 * append) and fails on anything else, so a changed profile cannot be copied half right:
 *
 *   deno run --allow-read src/oci/seccomp_default_gen.ts \
 *     ~/.cache/berth-tests/containerd-src/containerd-1.6.20 > src/oci/seccomp_default.ts
 *
 * (scripts/containerd_source.sh fetches that tree.) seccomp_default_test.ts reruns it and compares.
 *
 * The runtime-spec constants (specs.ActAllow → "SCMP_ACT_ALLOW") and golang.org/x/sys/unix constants
 * (ENOSYS, CLONE_NEW*) come from the Go sources containerd was built with: the tree's vendor/ when it has
 * them, else Debian's /usr/share/gocode (Debian's source package strips those folders from vendor/).
 */

const [tree, gocode = "/usr/share/gocode/src"] = Deno.args;
if (!tree) {
  console.error("usage: seccomp_default_gen.ts <containerd source tree> [gocode src dir]");
  Deno.exit(2);
}

/** GOARCH → Deno.build.arch: the two architectures Deno runs on. */
const ARCHES: Readonly<Record<string, string>> = { amd64: "x86_64", arm64: "aarch64" };

function readFirst(paths: string[]): { path: string; text: string } {
  for (const path of paths) {
    try {
      return { path, text: Deno.readTextFileSync(path) };
    } catch { /* try the next */ }
  }
  throw new Error(`Cannot read any of ${paths.join(", ")}`);
}

const source = readFirst([`${tree}/contrib/seccomp/seccomp_default.go`]);
const specsGo = readFirst([
  `${tree}/vendor/github.com/opencontainers/runtime-spec/specs-go/config.go`,
  `${gocode}/github.com/opencontainers/runtime-spec/specs-go/config.go`,
]);
const unixGo = [
  readFirst([
    `${tree}/vendor/golang.org/x/sys/unix/zerrors_linux.go`,
    `${gocode}/golang.org/x/sys/unix/zerrors_linux.go`,
  ]),
  readFirst([
    `${tree}/vendor/golang.org/x/sys/unix/zerrors_linux_amd64.go`,
    `${gocode}/golang.org/x/sys/unix/zerrors_linux_amd64.go`,
  ]),
];

/** `Name Type = "value"` string constants of runtime-spec (Arch*, Act*, Op*). */
const specConsts = new Map<string, string>();
for (const m of specsGo.text.matchAll(/^\s*(\w+)\s+\w+\s*=\s*"([^"]*)"/gm)) specConsts.set(m[1]!, m[2]!);
/** `NAME = 0x…` and `NAME = syscall.Errno(0x…)` constants of x/sys/unix. */
const unixConsts = new Map<string, bigint>();
for (const f of unixGo) {
  for (
    const m of f.text.matchAll(/^\s*([A-Z][A-Z0-9_]*)\s*=\s*(?:syscall\.\w+\()?(0x[0-9a-fA-F]+|\d+)\)?\s*$/gm)
  ) {
    unixConsts.set(m[1]!, BigInt(m[2]!));
  }
}

// ---- a lexer and parser for the Go this file uses ---------------------------------------------------

type Tok = { t: "ident" | "int" | "string" | "op"; v: string; line: number };

function lex(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  let line = 1;
  const endsStatement = (t: Tok | undefined) =>
    t !== undefined &&
    (t.t !== "op" || [")", "]", "}", "++", "--"].includes(t.v)) &&
    !(t.t === "ident" && ["if", "switch", "for", "case", "default", "func", "else"].includes(t.v));
  while (i < text.length) {
    const c = text[i]!;
    if (c === "\n") {
      if (endsStatement(out.at(-1))) out.push({ t: "op", v: ";", line });
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (text.startsWith("//", i)) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      line += text.slice(i, end).split("\n").length - 1;
      i = end + 2;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out.push({ t: "string", v: JSON.parse(text.slice(i, j + 1)), line });
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      out.push({ t: "ident", v: m[0], line });
      i += m[0].length;
    } else if (/\d/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|\d+)/.exec(text.slice(i))!;
      out.push({ t: "int", v: m[0], line });
      i += m[0].length;
    } else {
      const op = [":=", "==", "!=", "&&", "||", "<=", ">=", "++", "--", "..."].find((o) =>
        text.startsWith(o, i)
      ) ??
        c;
      out.push({ t: "op", v: op, line });
      i += op.length;
    }
  }
  return out;
}

type Expr =
  | { k: "ident"; name: string }
  | { k: "sel"; x: Expr; name: string }
  | { k: "int"; value: bigint }
  | { k: "string"; value: string }
  | { k: "composite"; type: string; elems: { key?: string; value: Expr }[] }
  | { k: "unary"; op: string; x: Expr }
  | { k: "binary"; op: string; x: Expr; y: Expr }
  | { k: "call"; fn: Expr; args: Expr[] };

type Stmt =
  | { k: "assign"; op: string; lhs: Expr[]; rhs: Expr[] }
  | { k: "expr"; x: Expr }
  | { k: "if"; init?: Stmt; cond: Expr; body: Stmt[] }
  | { k: "switch"; tag: Expr; cases: { values: Expr[] | "default"; body: Stmt[] }[] }
  | { k: "range"; key: string; value: string; x: Expr; body: Stmt[] }
  | { k: "return"; values: Expr[] };

class Parser {
  #toks: Tok[];
  #at = 0;
  /** In if/switch/for headers `x {` opens the block, not a composite literal (Go's rule). */
  #noLit = false;
  constructor(toks: Tok[]) {
    this.#toks = toks;
  }
  get peek(): Tok | undefined {
    return this.#toks[this.#at];
  }
  fail(what: string): never {
    const t = this.peek;
    throw new Error(`Cannot parse seccomp_default.go line ${t?.line}: ${what}, found "${t?.v}"`);
  }
  is(v: string): boolean {
    return this.peek?.v === v && this.peek.t !== "string";
  }
  eat(v: string): void {
    if (!this.is(v)) this.fail(`expected "${v}"`);
    this.#at++;
  }
  next(): Tok {
    const t = this.peek ?? this.fail("unexpected end");
    this.#at++;
    return t;
  }
  /** Moves to `func name(` and parses its body. */
  func(name: string): Stmt[] {
    this.#at = this.#toks.findIndex((t, i) => t.v === "func" && this.#toks[i + 1]?.v === name);
    if (this.#at < 0) throw new Error(`Cannot find func ${name} in seccomp_default.go`);
    while (!this.is("{")) this.next();
    return this.block();
  }
  block(): Stmt[] {
    this.eat("{");
    const out: Stmt[] = [];
    while (!this.is("}")) {
      if (this.is(";")) {
        this.next();
        continue;
      }
      out.push(this.stmt());
    }
    this.eat("}");
    return out;
  }
  header<T>(f: () => T): T {
    const saved = this.#noLit;
    this.#noLit = true;
    try {
      return f();
    } finally {
      this.#noLit = saved;
    }
  }
  stmt(): Stmt {
    if (this.is("if")) {
      this.next();
      let init: Stmt | undefined;
      let cond = this.header(() => this.simple());
      if (this.is(";")) {
        this.next();
        init = cond;
        cond = this.header(() => this.simple());
      }
      if (cond.k !== "expr") this.fail("expected an if condition");
      const body = this.block();
      if (this.is("else")) this.fail("else is not supported");
      return { k: "if", init, cond: cond.x, body };
    }
    if (this.is("switch")) {
      this.next();
      const tag = this.header(() => this.expr());
      this.eat("{");
      const cases: { values: Expr[] | "default"; body: Stmt[] }[] = [];
      while (!this.is("}")) {
        let values: Expr[] | "default";
        if (this.is("default")) {
          this.next();
          values = "default";
        } else {
          this.eat("case");
          values = this.exprList();
        }
        this.eat(":");
        const body: Stmt[] = [];
        while (!this.is("case") && !this.is("default") && !this.is("}")) {
          if (this.is(";")) this.next();
          else body.push(this.stmt());
        }
        cases.push({ values, body });
      }
      this.eat("}");
      return { k: "switch", tag, cases };
    }
    if (this.is("for")) {
      this.next();
      const key = this.next().v;
      this.eat(",");
      const value = this.next().v;
      this.eat(":=");
      this.eat("range");
      const x = this.header(() => this.expr());
      return { k: "range", key, value, x, body: this.block() };
    }
    if (this.is("return")) {
      this.next();
      return { k: "return", values: this.is(";") ? [] : this.exprList() };
    }
    return this.simple();
  }
  simple(): Stmt {
    const lhs = this.exprList();
    if (this.is(":=") || this.is("=")) {
      const op = this.next().v;
      return { k: "assign", op, lhs, rhs: this.exprList() };
    }
    if (lhs.length !== 1) this.fail("expected an assignment");
    return { k: "expr", x: lhs[0]! };
  }
  exprList(): Expr[] {
    const out = [this.expr()];
    while (this.is(",")) {
      this.next();
      out.push(this.expr());
    }
    return out;
  }
  expr(): Expr {
    let x = this.unary();
    while (["|", "==", "!=", "&&", "||"].some((o) => this.is(o))) {
      const op = this.next().v;
      x = { k: "binary", op, x, y: this.unary() };
    }
    return x;
  }
  unary(): Expr {
    if (this.is("&") || this.is("!") || this.is("-")) {
      const op = this.next().v;
      return { k: "unary", op, x: this.unary() };
    }
    return this.primary();
  }
  primary(): Expr {
    let x: Expr;
    if (this.is("[")) {
      // A slice type: only as the type of a composite literal.
      this.next();
      this.eat("]");
      return this.composite(`[]${this.typeName()}`);
    }
    const t = this.next();
    if (t.t === "int") x = { k: "int", value: BigInt(t.v) };
    else if (t.t === "string") x = { k: "string", value: t.v };
    else if (t.t === "ident") x = { k: "ident", name: t.v };
    else if (t.v === "(") {
      const saved = this.#noLit;
      this.#noLit = false;
      x = this.expr();
      this.#noLit = saved;
      this.eat(")");
    } else this.fail("expected an expression");
    for (;;) {
      if (this.is(".")) {
        this.next();
        x = { k: "sel", x, name: this.next().v };
      } else if (this.is("(")) {
        this.next();
        const saved = this.#noLit;
        this.#noLit = false;
        const args = this.is(")") ? [] : this.exprList();
        if (this.is("...")) this.next();
        this.#noLit = saved;
        this.eat(")");
        x = { k: "call", fn: x, args };
      } else if (this.is("{") && !this.#noLit && (x.k === "ident" || x.k === "sel")) {
        x = this.composite(render(x));
      } else return x;
    }
  }
  typeName(): string {
    let name = this.next().v;
    while (this.is(".")) {
      this.next();
      name += "." + this.next().v;
    }
    return name;
  }
  /** `{ elem, … }` or `{ Key: value, … }`; elements may be `{…}` of the elided element type. */
  composite(type: string): Expr {
    const saved = this.#noLit;
    this.#noLit = false;
    this.eat("{");
    const elems: { key?: string; value: Expr }[] = [];
    while (!this.is("}")) {
      if (this.is(";")) {
        this.next();
        continue;
      }
      let key: string | undefined;
      if (this.peek?.t === "ident" && this.#toks[this.#at + 1]?.v === ":") {
        key = this.next().v;
        this.eat(":");
      }
      const value = this.is("{") ? this.composite(type.replace(/^\[\]/, "")) : this.expr();
      elems.push({ key, value });
      if (this.is(",")) this.next();
      else if (!this.is(";") && !this.is("}")) this.fail("expected , or }");
    }
    this.eat("}");
    this.#noLit = saved;
    return { k: "composite", type, elems };
  }
}

function render(x: Expr): string {
  switch (x.k) {
    case "ident":
      return x.name;
    case "sel":
      return `${render(x.x)}.${x.name}`;
    case "string":
      return JSON.stringify(x.value);
    case "int":
      return String(x.value);
    case "unary":
      return x.op + render(x.x);
    case "binary":
      return `${render(x.x)} ${x.op} ${render(x.y)}`;
    case "call":
      return `${render(x.fn)}(${x.args.map(render).join(", ")})`;
    case "composite":
      return `${x.type}{…}`;
  }
}

// ---- evaluation into data ---------------------------------------------------------------------------

interface Arg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}
interface Syscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Arg[];
}
type Step =
  | { when: "always"; syscalls: Syscall[] }
  | { when: "kernel"; atLeast: [number, number]; syscalls: Syscall[] }
  | { when: "arch"; byArch: Record<string, Syscall[]> }
  | { when: "capability"; byCapability: Record<string, Syscall[]> }
  | { when: "without-capability"; capability: string; steps: Step[] };

const vars = new Map<string, number>();

function fail(what: string, x: Expr | Stmt): never {
  throw new Error(`Cannot evaluate ${what} in seccomp_default.go: ${JSON.stringify(x).slice(0, 200)}`);
}

function int(x: Expr): number {
  const big = (e: Expr): bigint => {
    if (e.k === "int") return e.value;
    if (e.k === "sel" && e.x.k === "ident" && e.x.name === "unix") {
      return unixConsts.get(e.name) ?? fail(`unix.${e.name}`, e);
    }
    if (e.k === "binary" && e.op === "|") return big(e.x) | big(e.y);
    if (e.k === "call" && e.fn.k === "ident" && e.fn.name === "uint" && e.args.length === 1) {
      return big(e.args[0]!);
    }
    if (e.k === "ident" && vars.has(e.name)) return BigInt(vars.get(e.name)!);
    return fail("an integer", e);
  };
  const v = big(x);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail("an integer above 2^53", x);
  return Number(v);
}

function specConst(x: Expr): string {
  if (x.k === "sel" && x.x.k === "ident" && x.x.name === "specs") {
    return specConsts.get(x.name) ?? fail(`specs.${x.name}`, x);
  }
  return fail("a runtime-spec constant", x);
}

function strings(x: Expr): string[] {
  if (x.k !== "composite" || x.type !== "[]string") fail("a []string", x);
  return x.elems.map((e) => e.value.k === "string" ? e.value.value : fail("a string", e.value));
}

function syscall(x: Expr): Syscall {
  if (x.k !== "composite" || x.type !== "specs.LinuxSyscall") fail("a specs.LinuxSyscall", x);
  const out: Syscall = { names: [], action: "" };
  for (const { key, value } of x.elems) {
    if (key === "Names") out.names = strings(value);
    else if (key === "Action") out.action = specConst(value);
    else if (key === "ErrnoRet") {
      if (value.k !== "unary" || value.op !== "&") fail("ErrnoRet", value);
      out.errnoRet = int(value.x);
    } else if (key === "Args") {
      if (value.k !== "composite" || value.type !== "[]specs.LinuxSeccompArg") fail("Args", value);
      const args = value.elems.map(({ value: a }): Arg => {
        if (a.k !== "composite") fail("a specs.LinuxSeccompArg", a);
        const arg: Arg = { index: 0, value: 0, op: "" };
        for (const f of a.elems) {
          if (f.key === "Index") arg.index = int(f.value);
          else if (f.key === "Value") arg.value = int(f.value);
          else if (f.key === "ValueTwo") {
            const v = int(f.value);
            // Go's omitempty: a zero valueTwo is not in the JSON.
            if (v !== 0) arg.valueTwo = v;
          } else if (f.key === "Op") arg.op = specConst(f.value);
          else fail(`LinuxSeccompArg field ${f.key}`, a);
        }
        return arg;
      });
      // Go's omitempty: an empty args list is not in the JSON.
      if (args.length > 0) out.args = args;
    } else fail(`LinuxSyscall field ${key}`, x);
  }
  return out;
}

const isSel = (x: Expr, text: string) => render(x) === text;

/** `s.Syscalls = append(s.Syscalls, lit)`: the appended syscall, else undefined. */
function appended(st: Stmt): Syscall | undefined {
  if (st.k !== "assign" || st.op !== "=" || st.lhs.length !== 1 || !isSel(st.lhs[0]!, "s.Syscalls")) return;
  const r = st.rhs[0];
  if (r?.k !== "call" || !isSel(r.fn, "append") || r.args.length !== 2 || !isSel(r.args[0]!, "s.Syscalls")) {
    return fail("an append to s.Syscalls", st);
  }
  return syscall(r.args[1]!);
}

/** Syscalls appended by a case body; `admin = true` there names the capability that unlocks admin. */
function appends(body: Stmt[], onOther?: (st: Stmt) => boolean): Syscall[] {
  const out: Syscall[] = [];
  for (const st of body) {
    const s = appended(st);
    if (s) out.push(s);
    else if (!onOther?.(st)) fail("a statement", st);
  }
  return out;
}

/** The list each architecture gets from `switch runtime.GOARCH`: its case, else default, else none. */
function byArch(st: Extract<Stmt, { k: "switch" }>): Record<string, Syscall[]> {
  const out: Record<string, Syscall[]> = {};
  for (const [goarch, arch] of Object.entries(ARCHES)) {
    const c = st.cases.find((c) =>
      c.values !== "default" && c.values.some((v) =>
        v.k === "string" && v.value === goarch
      )
    ) ??
      st.cases.find((c) => c.values === "default");
    out[arch] = c ? appends(c.body) : [];
  }
  return out;
}

let base: Syscall[] | undefined;
let defaultAction = "";
let adminFlag = "";
let adminCapability = "";

function steps(body: Stmt[]): Step[] {
  const out: Step[] = [];
  for (const st of body) {
    const one = appended(st);
    if (one) {
      const last = out.at(-1);
      if (last?.when === "always") last.syscalls.push(one);
      else out.push({ when: "always", syscalls: [one] });
      continue;
    }
    if (st.k === "assign" && st.op === ":=" && st.lhs.length === 1 && st.lhs[0]!.k === "ident") {
      const name = st.lhs[0]!.name;
      const rhs = st.rhs[0]!;
      if (rhs.k === "call") vars.set(name, int(rhs));
      else if (rhs.k === "composite" && rhs.type === "[]specs.LinuxSyscall") {
        base = rhs.elems.map((e) => syscall(e.value));
      } else if (
        rhs.k === "unary" && rhs.op === "&" && rhs.x.k === "composite" && rhs.x.type === "specs.LinuxSeccomp"
      ) {
        for (const { key, value } of rhs.x.elems) {
          if (key === "DefaultAction") defaultAction = specConst(value);
          else if (key === "Architectures" && isSel(value, "arches()")) continue;
          else if (key === "Syscalls" && value.k === "ident" && value.name === "syscalls" && base) {
            out.push({ when: "always", syscalls: base });
          } else fail(`LinuxSeccomp field ${key}`, value);
        }
      } else if (rhs.k === "ident" && rhs.name === "false") adminFlag = name;
      else fail("an assignment", st);
    } else if (
      st.k === "if" && st.init?.k === "assign" && st.init.rhs[0]?.k === "call" &&
      isSel(st.init.rhs[0].fn, "kernelversion.GreaterEqualThan")
    ) {
      // if ok, err := kernelversion.GreaterEqualThan(KernelVersion{Kernel: a, Major: b}); err == nil { if ok {…} }
      const v = st.init.rhs[0].args[0];
      if (v?.k !== "composite") fail("a KernelVersion", st);
      const field = (k: string) => int(v.elems.find((e) => e.key === k)?.value ?? fail(k, v));
      const inner = st.body[0];
      if (st.body.length !== 1 || inner?.k !== "if" || render(inner.cond) !== "ok") fail("if ok {…}", st);
      out.push({ when: "kernel", atLeast: [field("Kernel"), field("Major")], syscalls: appends(inner.body) });
    } else if (st.k === "switch" && isSel(st.tag, "runtime.GOARCH")) {
      out.push({ when: "arch", byArch: byArch(st) });
    } else if (st.k === "range" && isSel(st.x, "sp.Process.Capabilities.Bounding")) {
      const sw = st.body[0];
      if (st.body.length !== 1 || sw?.k !== "switch" || render(sw.tag) !== st.value) fail("switch c {…}", st);
      const byCapability: Record<string, Syscall[]> = {};
      for (const c of sw.cases) {
        const v = c.values === "default" || c.values.length !== 1 ? undefined : c.values[0];
        if (v?.k !== "string") fail("a case", st);
        const cap = v.value;
        byCapability[cap] = appends(c.body, (other) => {
          if (
            other.k === "assign" && render(other.lhs[0]!) === adminFlag && render(other.rhs[0]!) === "true"
          ) {
            adminCapability = cap;
            return true;
          }
          return false;
        });
      }
      out.push({ when: "capability", byCapability });
    } else if (st.k === "if" && !st.init && render(st.cond) === `!${adminFlag}` && adminCapability) {
      out.push({ when: "without-capability", capability: adminCapability, steps: steps(st.body) });
    } else if (st.k === "return") {
      if (render(st.values[0]!) !== "s") fail("return s", st);
    } else fail("a statement", st);
  }
  return out;
}

const parser = new Parser(lex(source.text));
const profileSteps = steps(parser.func("DefaultProfile"));
if (!defaultAction || !base) throw new Error("Cannot find the profile's default action and syscall list");

// func arches(): switch runtime.GOARCH { case "amd64": return []specs.Arch{…} … }
const archesBody = parser.func("arches");
const archSwitch = archesBody[0];
if (archesBody.length !== 1 || archSwitch?.k !== "switch") throw new Error("Cannot parse func arches()");
const architectures: Record<string, string[]> = {};
for (const [goarch, arch] of Object.entries(ARCHES)) {
  const c = archSwitch.cases.find((c) =>
    c.values !== "default" && c.values.some((v) => v.k === "string" && v.value === goarch)
  );
  const ret = c?.body[0];
  if (ret?.k !== "return" || ret.values[0]?.k !== "composite") {
    throw new Error(`Cannot find arches() for ${goarch}`);
  }
  architectures[arch] = ret.values[0].elems.map((e) => specConst(e.value));
}

const version = (() => {
  try {
    return Deno.readTextFileSync(`${tree}/.berth-version`).trim();
  } catch {
    return tree.replace(/.*\//, "");
  }
})();

console.log(`// deno-fmt-ignore-file
// Generated by seccomp_default_gen.ts from containerd ${version} contrib/seccomp/seccomp_default.go
// (with constants from ${specsGo.path.replace(/.*\/src\//, "")} and golang.org/x/sys/unix). Do not edit:
// rerun the generator (see its header). Architectures: x86_64 and aarch64, the two Deno runs on.
// seccomp.ts reads it as a SeccompDefaults, which checks its shape.

export const SECCOMP_DEFAULTS = ${
  JSON.stringify({ defaultAction, architectures, steps: profileSteps }, null, 2)
} as const;`);
