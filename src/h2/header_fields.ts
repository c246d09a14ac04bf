/**
 * Well-formed header lists (RFC 9113 §8.2, §8.3). A malformed one is a stream error of type PROTOCOL_ERROR
 * (§8.1.1), which is how golang.org/x/net/http2 and grpc-go, and so containerd, answer it.
 */

import type { HeaderField } from "./hpack.ts";

/** What a header block carries on its stream. */
export type HeaderListKind = "request" | "response" | "trailers";

/** Connection-specific fields, meaningless in HTTP/2 (§8.2.2). */
const connectionSpecific = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/** A bit per pseudo-header, to see duplicates and absences without a set per list. */
const pseudoBit = new Map([[":method", 1], [":scheme", 2], [":authority", 4], [":path", 8], [":status", 16]]);
const requestPseudo = 1 | 2 | 4 | 8;
const statusBit = 16;

/** 1 for the bytes a field name may hold (§8.2.1): none of 0x00-0x20, 'A'-'Z', 0x7f-0xff; ':' only first. */
const nameByte = new Uint8Array(256);
for (let b = 0x21; b < 0x7f; b++) nameByte[b] = b >= 0x41 && b <= 0x5a ? 0 : 1;
nameByte[0x3a] = 0;

export function isConnectionSpecific(name: string): boolean {
  return connectionSpecific.has(name);
}

/** Why `fields` is not a well-formed `kind`, or undefined if it is. */
export function malformed(fields: readonly HeaderField[], kind: HeaderListKind): string | undefined {
  let regular = false;
  let seen = 0;
  let method: string | undefined;
  for (const [name, value] of fields) {
    const problem = badName(name) ?? badValue(name, value);
    if (problem) return problem;
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return `Pseudo-header ${name} follows a regular field`;
      if (kind === "trailers") return `Pseudo-header ${name} in trailers`;
      const bit = pseudoBit.get(name) ?? 0;
      if (!(bit & (kind === "request" ? requestPseudo : statusBit))) {
        return `Pseudo-header ${name} is not allowed in a ${kind}`;
      }
      if (seen & bit) return `Pseudo-header ${name} appears twice`;
      seen |= bit;
      if (name === ":method") method = value;
      else if (name === ":path" && value === "") return "Pseudo-header :path is empty";
    } else {
      regular = true;
      if (connectionSpecific.has(name)) return `Connection-specific field ${name}`;
      if (name === "te" && value !== "trailers") return `Field te is "${value}", not "trailers"`;
    }
  }
  if (kind === "response" && !(seen & statusBit)) return "Response without :status";
  if (kind === "request") {
    if (method === undefined) return "Request without :method";
    // CONNECT names only an authority (§8.5); every other request a scheme and a path.
    if (method === "CONNECT") {
      if ((seen & requestPseudo) !== (1 | 4)) return "CONNECT request with other than :method and :authority";
    } else if (!(seen & 2)) {
      return "Request without :scheme";
    } else if (!(seen & 8)) {
      return "Request without :path";
    }
  }
  return undefined;
}

function badName(name: string): string | undefined {
  if (name.length === 0) return "Empty field name";
  for (let i = name.charCodeAt(0) === 0x3a ? 1 : 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0xff || nameByte[c] === 0) return `Field name ${JSON.stringify(name)} has an invalid character`;
  }
  return undefined;
}

/** NUL, CR and LF are never allowed in a value (§8.2.1). */
function badValue(name: string, value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return `Value of field ${name} has an invalid character`;
  }
  return undefined;
}
