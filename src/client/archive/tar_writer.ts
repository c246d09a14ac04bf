/**
 * A tar stream written to a WritableStream as it is made: `fill` adds the entries to a tar-stream pack,
 * which is pumped into `sink` meanwhile; a failure on either side aborts the other.
 */
import type { Pack } from "tar-stream";

export async function writeTar(
  sink: WritableStream<Uint8Array>,
  fill: (pack: Pack) => Promise<void>,
): Promise<void> {
  const pack = (await import("tar-stream")).default.pack();
  const pump = (async () => {
    const writer = sink.getWriter();
    try {
      for await (const chunk of pack as AsyncIterable<Uint8Array>) await writer.write(chunk);
      await writer.close();
    } catch (err) {
      await writer.abort(err).catch(() => {});
      throw err;
    }
  })();
  try {
    await fill(pack);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await pump.catch(() => {});
    throw err;
  }
  await pump;
}
