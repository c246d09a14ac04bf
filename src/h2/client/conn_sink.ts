import type { ByteSink } from "../frame_writer.ts";

/** A Deno connection as a connection's ByteSink: every write is asynchronous, and may take part of a batch. */
export function connSink(conn: Deno.Conn): ByteSink {
  return {
    async write(out) {
      for (let at = 0; at < out.length;) at += await conn.write(out.subarray(at));
    },
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}
