/**
 * node:crypto, loaded at its first use. A static import loads it (with Deno's node-compat) while its
 * module is evaluated: a CPU profile of the daemon's start showed ~35 ms there before the first call was
 * served, though nothing is hashed until a pull, a write or an unpack. process.getBuiltinModule() gives the
 * same module, synchronously, when it is first needed.
 */
import type * as NodeCrypto from "node:crypto";

let mod: typeof NodeCrypto | undefined;

export function nodeCrypto(): typeof NodeCrypto {
  return mod ??= process.getBuiltinModule("node:crypto") as typeof NodeCrypto;
}
