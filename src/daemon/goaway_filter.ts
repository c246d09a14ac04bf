import { Duplex } from "node:stream";
import type * as net from "node:net";

/**
 * Deno 2.9's node:http2 (nghttp2 underneath) can abort the whole process on an assertion in
 * find_stream_on_goaway_func when a client sends GOAWAY (denoland/deno#36788). No JavaScript runs
 * before the abort, so the only defence is that nghttp2 never sees a client's GOAWAY: this duplex
 * sits between the socket and the HTTP/2 session, passes every byte through, and drops GOAWAY frames
 * from the client. A client that sends GOAWAY closes its socket next, which the session handles as EOF.
 */
const preface = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const headerSize = 9;
const goawayType = 0x7;

export class GoawayFilter {
  #skipPreface = preface;
  #buffer: Uint8Array = new Uint8Array(0);
  #dropping = 0;
  #passing = 0;
  /** Client GOAWAY frames removed so far. */
  dropped = 0;

  /** Returns the bytes to hand to nghttp2 for a chunk read from the client. */
  push(chunk: Uint8Array): Uint8Array {
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#skipPreface > 0) {
        const n = Math.min(this.#skipPreface, chunk.length - pos);
        out.push(chunk.subarray(pos, pos + n));
        this.#skipPreface -= n;
        pos += n;
        continue;
      }
      if (this.#passing > 0) {
        const n = Math.min(this.#passing, chunk.length - pos);
        out.push(chunk.subarray(pos, pos + n));
        this.#passing -= n;
        pos += n;
        continue;
      }
      if (this.#dropping > 0) {
        const n = Math.min(this.#dropping, chunk.length - pos);
        this.#dropping -= n;
        pos += n;
        continue;
      }
      // At a frame boundary: gather the 9-byte header, possibly across chunks.
      const need = headerSize - this.#buffer.length;
      const take = chunk.subarray(pos, pos + need);
      this.#buffer = concat(this.#buffer, take);
      pos += take.length;
      if (this.#buffer.length < headerSize) break;
      const header = this.#buffer;
      this.#buffer = new Uint8Array(0);
      const length = (header[0]! << 16) | (header[1]! << 8) | header[2]!;
      if (header[3] === goawayType) {
        this.dropped++;
        this.#dropping = length;
      } else {
        out.push(header);
        this.#passing = length;
      }
    }
    return out.length === 1 ? out[0]! : concat(...out);
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Wraps an accepted socket so the HTTP/2 server reads through a GoawayFilter. */
export function filterGoaway(socket: net.Socket): Duplex {
  const filter = new GoawayFilter();
  const duplex: Duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _enc, cb) {
      if (socket.destroyed) return cb();
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on("data", (chunk: Uint8Array) => {
    const out = filter.push(chunk);
    if (out.length > 0 && !duplex.push(out)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}
