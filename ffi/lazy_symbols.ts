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
