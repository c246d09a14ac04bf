/**
 * The CRI's in-memory index of pods and containers, rebuilt from the container records at start-up
 * (their metadata travels in container extensions, as in containerd). Ids can be given by any unique
 * prefix, as crictl prints and takes them (containerd's truncindex).
 */
import { alreadyExists, invalidArgument, notFound } from "../../base/errors.ts";

/** Names are reserved while a pod or container holds them (containerd's registrar). */
export class NameIndex {
  readonly #byName = new Map<string, string>();

  /** Reserves `name` for `key`; a name another key holds is already exists, naming the holder. */
  reserve(name: string, key: string): void {
    const holder = this.#byName.get(name);
    if (holder !== undefined && holder !== key) {
      throw alreadyExists(`name "${name}" is reserved for "${holder}"`);
    }
    this.#byName.set(name, key);
  }

  releaseByName(name: string): void {
    this.#byName.delete(name);
  }

  releaseByKey(key: string): void {
    for (const [name, k] of this.#byName) if (k === key) this.#byName.delete(name);
  }
}

/** Items by full id, found by any unique id prefix. */
export class IdIndex<T> {
  readonly #kind: string;
  readonly #items = new Map<string, T>();

  constructor(kind: string) {
    this.#kind = kind;
  }

  add(id: string, item: T): void {
    if (this.#items.has(id)) throw alreadyExists(`${this.#kind} "${id}" already exists`);
    this.#items.set(id, item);
  }

  /** The item whose id is `id` or starts with it; not found, or invalid when the prefix is ambiguous. */
  get(id: string): T {
    if (id === "") throw invalidArgument(`${this.#kind} id is empty`);
    const exact = this.#items.get(id);
    if (exact !== undefined) return exact;
    let found: T | undefined;
    let count = 0;
    for (const [k, v] of this.#items) {
      if (k.startsWith(id)) {
        found = v;
        count++;
      }
    }
    if (count > 1) throw invalidArgument(`${this.#kind} id prefix "${id}" is ambiguous`);
    if (found === undefined) throw notFound(`${this.#kind} "${id}" not found`);
    return found;
  }

  has(id: string): boolean {
    return this.#items.has(id);
  }

  delete(id: string): void {
    this.#items.delete(id);
  }

  list(): T[] {
    return [...this.#items.values()];
  }
}

/** 64 random hex digits, as containerd's util.GenerateID. */
export function generateId(): string {
  return [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
