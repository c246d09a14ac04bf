/**
 * The zlib dictionary of SPDY/3 header compression (draft 3, §2.6.10.1): 1423 bytes that both ends load
 * before the first header block, so that common names cost a back-reference. It is written here as the
 * spec lays it out, length-prefixed words then one run of text, and assembled once.
 */

import { concatBytes } from "../../../../base/bytes.ts";

const WORDS = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
];

const TAIL = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
  "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized" +
  "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable" +
  "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
  "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain," +
  "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

function assemble(): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const word of WORDS) {
    const bytes = enc.encode(word);
    const prefixed = new Uint8Array(4 + bytes.length);
    new DataView(prefixed.buffer).setUint32(0, bytes.length);
    prefixed.set(bytes, 4);
    parts.push(prefixed);
  }
  parts.push(enc.encode(TAIL));
  return concatBytes(parts);
}

/** The SPDY/3 header compression dictionary. */
export const headerDictionary: Uint8Array = assemble();
