/**
 * A compose file as a small tree of maps, sequences and scalars that remember where they were written
 * (file, line, column), so every later error can point at the offending line. Aliases are resolved and
 * `<<` merge keys applied here, as compose-go does, so the rest of the loader never sees them.
 */
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

export interface Pos {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
}

export interface MapEntry {
  readonly keyPos: Pos;
  readonly value: YNode;
}

export type YNode =
  | { readonly kind: "map"; readonly pos: Pos; readonly entries: Map<string, MapEntry> }
  | { readonly kind: "seq"; readonly pos: Pos; readonly items: readonly YNode[] }
  | { readonly kind: "scalar"; readonly pos: Pos; readonly value: string | number | boolean | null };

/** An error in a compose file or project; the message names the file and line when there is one. */
export class ComposeError extends Error {
  constructor(message: string, readonly pos?: Pos) {
    super(pos ? `${pos.file}:${pos.line}:${pos.col}: ${message}` : message);
    this.name = "ComposeError";
  }
}

const MERGE_KEY = "<<";
/** Bounds alias expansion: a "billion laughs" file must fail, not fill the memory. */
const MAX_NODES = 1_000_000;

/** Parses one YAML document. An empty file is an empty map. */
export function parseYamlTree(text: string, file: string): YNode {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const posAt = (offset: number): Pos => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const first = doc.errors[0];
  if (first) {
    const message = first.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw new ComposeError(`Invalid YAML: ${message}`, posAt(first.pos[0]));
  }
  if (doc.contents === null) return { kind: "map", pos: posAt(0), entries: new Map() };
  let count = 0;
  const convert = (node: Node | null, fallback: number): YNode => {
    if (++count > MAX_NODES) throw new ComposeError("Invalid YAML: too many nodes after alias expansion");
    const pos = posAt(node?.range?.[0] ?? fallback);
    if (node === null) return { kind: "scalar", pos, value: null };
    if (isAlias(node)) {
      const target = node.resolve(doc as Document);
      if (!target) throw new ComposeError(`Unknown alias "*${node.source}"`, pos);
      return convert(target as Node, fallback);
    }
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
        return { kind: "scalar", pos, value: v };
      }
      if (typeof v === "bigint") return { kind: "scalar", pos, value: Number(v) };
      return { kind: "scalar", pos, value: String(v) };
    }
    if (isSeq(node)) {
      return { kind: "seq", pos, items: node.items.map((i) => convert(i as Node | null, pos.line)) };
    }
    if (isMap(node)) {
      const entries = new Map<string, MapEntry>();
      const merged: YNode[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyPos = posAt(keyNode?.range?.[0] ?? node.range?.[0] ?? 0);
        const key = isScalar(keyNode) ? keyNode.value : null;
        if (key === null || typeof key === "object") {
          throw new ComposeError("Invalid YAML: a key must be a scalar", keyPos);
        }
        const value = convert(pair.value as Node | null, keyNode?.range?.[2] ?? 0);
        if (String(key) === MERGE_KEY && !(isScalar(keyNode) && keyNode.type !== "PLAIN")) {
          merged.push(value);
          continue;
        }
        entries.set(String(key), { keyPos, value });
      }
      // Keys written in the map win over merged ones; earlier merge sources win over later ones.
      for (const source of merged) {
        const sources = source.kind === "seq" ? source.items : [source];
        for (const s of sources) {
          if (s.kind !== "map") {
            throw new ComposeError("A merge key (<<) takes a map or a list of maps", s.pos);
          }
          for (const [k, e] of s.entries) if (!entries.has(k)) entries.set(k, e);
        }
      }
      return { kind: "map", pos, entries };
    }
    throw new ComposeError("Invalid YAML: unsupported node", pos);
  };
  return convert(doc.contents as Node, 0);
}

/** A short name of a node's kind for error messages. */
export function kindName(node: YNode): string {
  if (node.kind !== "scalar") return node.kind === "map" ? "a map" : "a list";
  if (node.value === null) return "null";
  return `a ${typeof node.value}`;
}
