/**
 * Reading typed values out of a compose tree, each failure naming the place: the shared vocabulary of
 * the loader (maps with known keys, strings, numbers, durations, sizes, shell words).
 */
import { ComposeError, kindName, type YNode } from "./yaml_tree.ts";
import { parseGoDuration } from "../../base/duration.ts";

export const capitalized = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** An I/O error's cause without Deno's repetition of the call and path. */
export function ioCause(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "not found";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  return (err as Error).message;
}

export type MapNode = Extract<YNode, { kind: "map" }>;

export function asMap(node: YNode, what: string): MapNode {
  if (node.kind !== "map") {
    throw new ComposeError(`${capitalized(what)} must be a map, not ${kindName(node)}`, node.pos);
  }
  return node;
}

/** Rejects keys outside `known`; `x-` extensions are always allowed (and ignored). */
export function checkKeys(map: MapNode, known: readonly string[], what: string): void {
  for (const [key, entry] of map.entries) {
    if (key.startsWith("x-") || known.includes(key)) continue;
    throw new ComposeError(`Unknown key "${key}" in ${what}`, entry.keyPos);
  }
}

/** The value of a key, or undefined when absent. */
export function field(map: MapNode, key: string): YNode | undefined {
  return map.entries.get(key)?.value;
}

export function str(node: YNode, what: string): string {
  if (node.kind === "scalar" && node.value !== null) {
    if (typeof node.value === "string") return node.value;
    if (typeof node.value === "number") return String(node.value);
  }
  throw new ComposeError(`${capitalized(what)} must be a string, not ${kindName(node)}`, node.pos);
}

/** A string, or undefined for an absent key or null. */
export function optStr(node: YNode | undefined, what: string): string | undefined {
  if (node === undefined || (node.kind === "scalar" && node.value === null)) return undefined;
  return str(node, what);
}

/** A string where YAML may have typed the scalar: numbers and booleans are written back as text. */
export function scalarText(node: YNode, what: string): string {
  if (node.kind === "scalar" && node.value !== null) return String(node.value);
  throw new ComposeError(`${capitalized(what)} must be a scalar, not ${kindName(node)}`, node.pos);
}

export function int(node: YNode, what: string, min = 0): number {
  const text = node.kind === "scalar" ? String(node.value) : "";
  const n = node.kind === "scalar" && /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ComposeError(
      `${capitalized(what)} must be an integer${min > 0 ? ` of at least ${min}` : ""}`,
      node.pos,
    );
  }
  return n;
}

export function num(node: YNode, what: string): number {
  const n = node.kind === "scalar" && node.value !== null && node.value !== "" ? Number(node.value) : NaN;
  if (!Number.isFinite(n) || n < 0) throw new ComposeError(`${capitalized(what)} must be a number`, node.pos);
  return n;
}

export function bool(node: YNode, what: string): boolean {
  if (node.kind === "scalar") {
    if (typeof node.value === "boolean") return node.value;
    if (typeof node.value === "string" && /^(true|false)$/i.test(node.value)) {
      return node.value.toLowerCase() === "true";
    }
  }
  throw new ComposeError(`${capitalized(what)} must be true or false`, node.pos);
}

export function optBool(node: YNode | undefined, what: string): boolean {
  if (node === undefined || (node.kind === "scalar" && node.value === null)) return false;
  return bool(node, what);
}

export function seq(node: YNode, what: string): readonly YNode[] {
  if (node.kind !== "seq") {
    throw new ComposeError(`${capitalized(what)} must be a list, not ${kindName(node)}`, node.pos);
  }
  return node.items;
}

export function strList(node: YNode, what: string): string[] {
  return seq(node, what).map((item) => scalarText(item, `An item of ${what}`));
}

/** `labels:`/`environment:` forms: a list of `K=V` (or bare `K`), or a map of K to a scalar or null. */
export function keyValues(node: YNode, what: string): Array<[string, string | undefined]> {
  if (node.kind === "seq") {
    return node.items.map((item) => {
      const text = scalarText(item, `An item of ${what}`);
      const eq = text.indexOf("=");
      if (eq === 0) throw new ComposeError(`An item of ${what} has no name: "${text}"`, item.pos);
      return eq < 0 ? [text, undefined] : [text.slice(0, eq), text.slice(eq + 1)];
    });
  }
  const map = asMap(node, what);
  return [...map.entries].map(([key, { value }]) => {
    if (value.kind === "scalar" && value.value === null) return [key, undefined];
    return [key, scalarText(value, `${what} "${key}"`)];
  });
}

/** Compose's durations (`1m30s`, `500ms`, Go's syntax), in milliseconds. */
export function parseDuration(text: string): number {
  return parseGoDuration(text);
}

export function duration(node: YNode, what: string): number {
  try {
    return parseDuration(scalarText(node, what));
  } catch (err) {
    throw new ComposeError(`${capitalized(what)}: ${(err as Error).message}`, node.pos);
  }
}

/** Docker's byte sizes (`512m`, `1g`, `1024`, `2gb`), in bytes; units are powers of 1024. */
export function byteSize(node: YNode, what: string): number {
  const text = scalarText(node, what).trim().toLowerCase();
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/.exec(text);
  if (!m) {
    throw new ComposeError(`${capitalized(what)} must be a size like 512m or 1g, not "${text}"`, node.pos);
  }
  const power = " kmgt".indexOf(m[2] || " ");
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/** Splits a command line as a POSIX shell would split words (quotes and backslashes; no expansion). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`Unterminated single quote in "${line}"`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) i++;
        word += line[i];
        i++;
      }
      if (i >= line.length) throw new Error(`Unterminated double quote in "${line}"`);
      inWord = true;
      i++;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
