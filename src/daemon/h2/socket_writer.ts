import type * as net from "node:net";
import { FrameBatcher } from "../../h2/frame_batcher.ts";

/** The server's frame writer: batches frames (FrameBatcher) into one socket.write per tick. */
export function socketWriter(socket: net.Socket): FrameBatcher {
  const writer = new FrameBatcher({
    write(out) {
      if (!socket.destroyed && socket.writable) socket.write(out);
    },
    // node buffers every write itself: writers wait only while the socket asks for a drain.
    full: () => socket.writableNeedDrain,
  });
  socket.on("drain", () => writer.wake());
  return writer;
}
