/** Binds the symbols of one table that are still unbound. */
const binders: (() => void)[] = [];

/**
 * libc symbols bound one by one, on first use. `Deno.dlopen` compiles a call trampoline for every symbol
 * it is given, up front: a module's whole table (process.ts's 21 symbols, with buffer parameters) costs a
 * process ~4-8 ms at its first call, on the start path of every shim and CLI, though a start needs one or
 * two of them. Bound lazily, each symbol costs ~0.2 ms when first called, and never when not.
 */
export function lazySymbols<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  library = "libc.so.6",
): Deno.DynamicLibrary<S>["symbols"] {
  const out = {} as Record<string, unknown>;
  binders.push(() => {
    for (const name of Object.keys(symbols)) {
      try {
        void out[name];
      } catch { /* missing from this libc: its first call says so */ }
    }
  });
  for (const name of Object.keys(symbols)) {
    Object.defineProperty(out, name, {
      configurable: true,
      enumerable: true,
      get() {
        const bound = Deno.dlopen(library, { [name]: symbols[name]! }).symbols[name];
        Object.defineProperty(out, name, { value: bound, enumerable: true });
        return bound;
      },
    });
  }
  return out as Deno.DynamicLibrary<S>["symbols"];
}

/**
 * Binds now every symbol of every table made so far (those of the modules loaded): for a process with
 * time to spare before its work, such as a spare shim waiting for its container.
 */
export function bindLazySymbols(): void {
  for (const bind of binders) bind();
}
