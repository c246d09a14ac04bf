import { type ServerSocket, whenDrained } from "./conn_socket.ts";
import type { ByteSink } from "../frame_writer.ts";

/**
 * A server socket (node:net's or a ConnSocket) as a connection's ByteSink. A write the socket could not
 * take at once (it asked for a drain) keeps the sink busy until the drain: what comes meanwhile waits in
 * the FrameWriter, where the connection's limits see it, instead of piling up in the socket's queue.
 */
export function socketSink(socket: ServerSocket): ByteSink {
  return {
    write(out) {
      if (socket.destroyed || !socket.writable) return;
      if (socket.write(out)) return;
      return whenDrained(socket);
    },
    close(now) {
      if (now) socket.destroy();
      else socket.end();
    },
  };
}
