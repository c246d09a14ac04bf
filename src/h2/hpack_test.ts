import assert from "node:assert/strict";
import { encodeHeaders, HpackDecoder, HpackError, huffmanDecode, huffmanEncode } from "./hpack.ts";

/** RFC 7541 Appendix C examples (as golang.org/x/net's hpack_test.go transcribes them): bytes, fields, table after. */
interface Step {
  hex: string;
  want: [string, string][];
  table: [string, string][];
  size: number;
}

const examples: { title: string; tableSize: number; steps: Step[] }[] = [
  {
    title: "C.3 requests without Huffman",
    tableSize: 4096,
    steps: [
      {
        hex: "828684410f7777772e6578616d706c652e636f6d",
        want: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
        table: [[":authority", "www.example.com"]],
        size: 57,
      },
      {
        hex: "828684be58086e6f2d6361636865",
        want: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], [
          "cache-control",
          "no-cache",
        ]],
        table: [["cache-control", "no-cache"], [":authority", "www.example.com"]],
        size: 110,
      },
      {
        hex: "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        want: [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [
          ":authority",
          "www.example.com",
        ], ["custom-key", "custom-value"]],
        table: [["custom-key", "custom-value"], ["cache-control", "no-cache"], [
          ":authority",
          "www.example.com",
        ]],
        size: 164,
      },
    ],
  },
  {
    title: "C.4 requests with Huffman",
    tableSize: 4096,
    steps: [
      {
        hex: "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        want: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
        table: [[":authority", "www.example.com"]],
        size: 57,
      },
      {
        hex: "828684be5886a8eb10649cbf",
        want: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], [
          "cache-control",
          "no-cache",
        ]],
        table: [["cache-control", "no-cache"], [":authority", "www.example.com"]],
        size: 110,
      },
      {
        hex: "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        want: [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [
          ":authority",
          "www.example.com",
        ], ["custom-key", "custom-value"]],
        table: [["custom-key", "custom-value"], ["cache-control", "no-cache"], [
          ":authority",
          "www.example.com",
        ]],
        size: 164,
      },
    ],
  },
  {
    title: "C.5 responses without Huffman, table size 256",
    tableSize: 256,
    steps: [
      {
        hex:
          "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        want: [[":status", "302"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "location",
          "https://www.example.com",
        ]],
        table: [["location", "https://www.example.com"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "cache-control",
          "private",
        ], [":status", "302"]],
        size: 222,
      },
      {
        hex: "4803333037c1c0bf",
        want: [[":status", "307"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "location",
          "https://www.example.com",
        ]],
        table: [[":status", "307"], ["location", "https://www.example.com"], [
          "date",
          "Mon, 21 Oct 2013 20:13:21 GMT",
        ], ["cache-control", "private"]],
        size: 222,
      },
      {
        hex:
          "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
        want: [
          [":status", "200"],
          ["cache-control", "private"],
          ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
          ["location", "https://www.example.com"],
          ["content-encoding", "gzip"],
          ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
        ],
        table: [["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"], [
          "content-encoding",
          "gzip",
        ], ["date", "Mon, 21 Oct 2013 20:13:22 GMT"]],
        size: 215,
      },
    ],
  },
  {
    title: "C.6 responses with Huffman, table size 256",
    tableSize: 256,
    steps: [
      {
        hex:
          "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
        want: [[":status", "302"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "location",
          "https://www.example.com",
        ]],
        table: [["location", "https://www.example.com"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "cache-control",
          "private",
        ], [":status", "302"]],
        size: 222,
      },
      {
        hex: "4883640effc1c0bf",
        want: [[":status", "307"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], [
          "location",
          "https://www.example.com",
        ]],
        table: [[":status", "307"], ["location", "https://www.example.com"], [
          "date",
          "Mon, 21 Oct 2013 20:13:21 GMT",
        ], ["cache-control", "private"]],
        size: 222,
      },
      {
        hex:
          "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
        want: [
          [":status", "200"],
          ["cache-control", "private"],
          ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
          ["location", "https://www.example.com"],
          ["content-encoding", "gzip"],
          ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
        ],
        table: [["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"], [
          "content-encoding",
          "gzip",
        ], ["date", "Mon, 21 Oct 2013 20:13:22 GMT"]],
        size: 215,
      },
    ],
  },
];

function unhex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

for (const ex of examples) {
  Deno.test(`HpackDecoder decodes RFC 7541 ${ex.title} and keeps the dynamic table as the RFC shows`, () => {
    const d = new HpackDecoder(ex.tableSize);
    for (const step of ex.steps) {
      assert.deepStrictEqual(d.decode(unhex(step.hex)), step.want);
      assert.deepStrictEqual(d.table, step.table);
      assert.deepStrictEqual(d.tableSize, step.size);
    }
  });
}

Deno.test("HpackDecoder evicts the oldest entries when a table size update shrinks the table", () => {
  const d = new HpackDecoder(4096);
  d.decode(unhex(examples[0]!.steps[0]!.hex));
  d.decode(unhex(examples[0]!.steps[1]!.hex));
  assert.deepStrictEqual(d.tableSize, 110);
  // 0x3f 0x21 = size update to 31 + 33 = 64: only "cache-control: no-cache" (53) fits.
  assert.deepStrictEqual(d.decode(Uint8Array.of(0x3f, 0x21)), []);
  assert.deepStrictEqual(d.table, [["cache-control", "no-cache"]]);
  assert.throws(() => d.decode(Uint8Array.of(0x3f, 0xe2, 0x1f)), HpackError); // 4097 > 4096
});

Deno.test("HpackDecoder rejects index 0, indexes past the tables and truncated strings", () => {
  assert.throws(() => new HpackDecoder().decode(Uint8Array.of(0x80)), HpackError);
  assert.throws(() => new HpackDecoder().decode(Uint8Array.of(0xbe)), HpackError);
  assert.throws(() => new HpackDecoder().decode(Uint8Array.of(0x00, 0x05, 0x61)), HpackError);
});

Deno.test("huffmanDecode rejects padding longer than 7 bits or not made of ones", () => {
  assert.deepStrictEqual(huffmanDecode(huffmanEncode("www.example.com")), "www.example.com");
  assert.throws(() => huffmanDecode(Uint8Array.of(0xff, 0xff)), HpackError);
  // "a" is 00011 (5 bits): padding 000 is invalid.
  assert.throws(() => huffmanDecode(Uint8Array.of(0x18)), HpackError);
  assert.deepStrictEqual(huffmanDecode(Uint8Array.of(0x1f)), "a");
});

Deno.test("encodeHeaders output decodes back to the same fields, also with long names and values", () => {
  const fields: [string, string][] = [
    [":status", "200"],
    ["content-type", "application/grpc"],
    ["grpc-status", "0"],
    ["x-long", "v".repeat(300)],
    ["x-".repeat(100), "é"],
  ];
  const d = new HpackDecoder();
  assert.deepStrictEqual(d.decode(encodeHeaders(fields)), fields);
  assert.deepStrictEqual(d.tableSize, 0);
});

Deno.test("HpackDecoder.decodeList stops collecting past the list limit, reads on to keep the table, and costs no copies", () => {
  const decoder = new HpackDecoder();
  // A 4,000-byte entry (name "x") and 250,000 one-byte references to it: a billion bytes decoded.
  const literal = Uint8Array.of(0x40, 1, 0x78, 0x7f, (3873 & 0x7f) | 0x80, 3873 >> 7);
  const block = new Uint8Array(literal.length + 4000 + 250_000 + 3);
  block.set(literal);
  block.fill(0x76, literal.length, literal.length + 4000);
  block.fill(0x80 | 62, literal.length + 4000);
  // After the references: a literal with indexing that must still reach the table.
  block.set([0x40 | 1, 1, 0x61], block.length - 3);
  const started = performance.now();
  const { fields, truncated } = decoder.decodeList(block, 64 << 10);
  assert.ok(performance.now() - started < 100, `decoding took ${performance.now() - started} ms`);
  assert.equal(truncated, true);
  assert.deepEqual(fields, []);
  assert.deepEqual(decoder.table.map(([n, v]) => [n, v.length]), [[":authority", 1], ["x", 4000]]);
  // Within the limit, every field is there, counted as name + value + 32.
  const fits = new HpackDecoder().decodeList(encodeHeaders([["a", "b".repeat(30)]]), 63);
  assert.deepEqual(fits, { fields: [["a", "b".repeat(30)]], truncated: false });
  assert.equal(new HpackDecoder().decodeList(encodeHeaders([["a", "b".repeat(31)]]), 63).truncated, true);
});

Deno.test("HpackDecoder.decodeList still rejects a bad index past the limit", () => {
  const block = new Uint8Array([...encodeHeaders([["a", "b".repeat(100)]]), 0x80 | 70]);
  assert.throws(() => new HpackDecoder().decodeList(block, 10), HpackError);
});
