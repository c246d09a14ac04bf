import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  ControlType,
  encodeData,
  encodeGoaway,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeStreamHeaders,
  encodeSynStream,
  encodeWindowUpdate,
  FrameParser,
  parseControl,
  type RawFrame,
  SpdySessionError,
} from "./frames.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const limits = { maxControlPayload: 1024, maxDataPayload: 4096 };

function parseOne(bytes: Uint8Array): RawFrame {
  const frames = new FrameParser(limits).push(bytes);
  assert.equal(frames.length, 1);
  return frames[0]!;
}

Deno.test("Control frames are encoded as spdystream's framer writes them", () => {
  // Byte strings from github.com/moby/spdystream/spdy (Go) writing the same frames.
  assert.equal(hex(encodeRstStream(3, 5)), "80030003000000080000000300000005");
  assert.equal(hex(encodeGoaway(7, 0)), "80030007000000080000000700000000");
  assert.equal(hex(encodePing(1)), "800300060000000400000001");
  assert.equal(hex(encodeWindowUpdate(0, 65536)), "80030009000000080000000000010000");
  assert.equal(
    hex(encodeSettings([[4, 100], [7, 65536]])),
    "80030004000000140000000200000004000000640000000700010000",
  );
  // The SYN_REPLY with empty headers that spdystream sends first on a connection, its block included.
  const block = new Uint8Array(Buffer.from("78f9e3c6a7c26260606000000000ffff", "hex"));
  assert.equal(
    hex(encodeStreamHeaders(1, block)),
    "80030002000000140000000178f9e3c6a7c26260606000000000ffff",
  );
});

Deno.test("Data frames carry the stream id, the FIN flag and the length in their header", () => {
  const frame = encodeData(5, new Uint8Array([1, 2, 3]), { fin: true });
  assert.equal(hex(frame), "0000000501000003010203");
  const parsed = parseOne(frame);
  assert.deepEqual(
    { control: parsed.control, streamId: parsed.streamId, flags: parsed.flags, payload: [...parsed.payload] },
    { control: false, streamId: 5, flags: 1, payload: [1, 2, 3] },
  );
});

Deno.test("FrameParser reassembles frames split at every byte and several frames in one chunk", () => {
  const wire = new Uint8Array([
    ...encodeSynStream({ streamId: 1, priority: 3, flags: 1, block: new Uint8Array([9, 9]) }),
    ...encodeData(1, new Uint8Array(100).fill(7)),
    ...encodePing(11),
  ]);
  const parser = new FrameParser(limits);
  const frames: RawFrame[] = [];
  for (let i = 0; i < wire.length; i++) frames.push(...parser.push(wire.subarray(i, i + 1)));
  assert.equal(frames.length, 3);
  assert.equal(parser.buffered, 0);
  const syn = parseControl(frames[0]!);
  assert.deepEqual(syn, {
    type: ControlType.synStream,
    flags: 1,
    streamId: 1,
    associatedStreamId: 0,
    priority: 3,
    block: new Uint8Array([9, 9]),
  });
  assert.equal(frames[1]!.payload.length, 100);
  assert.deepEqual(parseControl(frames[2]!), { type: ControlType.ping, id: 11 });
  assert.equal(new FrameParser(limits).push(wire).length, 3);
});

Deno.test("FrameParser refuses a frame longer than its limit from the header alone", () => {
  const parser = new FrameParser(limits);
  // Only the 8-byte header of a 5000-byte data frame: rejected before any payload is held.
  const header = encodeData(1, new Uint8Array(5000)).subarray(0, 8);
  assert.throws(
    () => parser.push(header),
    (e) => e instanceof SpdySessionError && /5000 bytes/.test(e.message),
  );
  const control = encodeSynStream({ streamId: 1, block: new Uint8Array(2000) }).subarray(0, 8);
  assert.throws(
    () => new FrameParser(limits).push(control),
    /Control frame of 2010 bytes exceeds the limit of 1024/,
  );
});

Deno.test("parseControl rejects control frames whose payload has the wrong size", () => {
  const rst = encodeRstStream(1, 5);
  rst[7] = 4; // length 4 instead of 8
  assert.throws(
    () => parseControl(parseOne(rst.subarray(0, 12))),
    /RST_STREAM frame has a payload of 4 bytes/,
  );
  const settings = encodeSettings([[4, 1]]);
  settings[11] = 9; // announces 9 entries in 12 bytes
  assert.throws(() => parseControl(parseOne(settings)), /announces 9 entries/);
});

Deno.test("parseControl reads every control frame the server meets and passes unknown types on", () => {
  assert.deepEqual(parseControl(parseOne(encodeGoaway(9, 1))), {
    type: ControlType.goaway,
    lastGoodStreamId: 9,
    status: 1,
  });
  assert.deepEqual(parseControl(parseOne(encodeWindowUpdate(3, 1000))), {
    type: ControlType.windowUpdate,
    streamId: 3,
    delta: 1000,
  });
  assert.deepEqual(parseControl(parseOne(encodeSettings([[7, 1 << 20]]))), {
    type: ControlType.settings,
    entries: [[7, 1 << 20]],
  });
  const credential = encodePing(1);
  credential[3] = 10; // CREDENTIAL, gone in SPDY/3.1
  assert.deepEqual(parseControl(parseOne(credential)), { type: "unknown", code: 10 });
});
