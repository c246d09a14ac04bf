/** Byte helpers every floor needs. */

/**
 * The chunks copied into one new array (never one of them: callers may reuse their buffers); `total`,
 * when the caller counted already, saves a pass.
 */
export function concatBytes(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
