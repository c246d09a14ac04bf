/**
 * The bounds both ends of a connection hold against a peer (RFC 9113 §10.5 "Denial-of-Service
 * Considerations"), in one place. Each was measured against an attack on the daemon's socket
 * (tests/h2_limits_test.ts) before it was set.
 */

/**
 * SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce on the decoded list (name + value + 32 per field,
 * RFC 9113 §6.5.2). Without it a 256 KiB block of one-byte references to a 4 KB table entry decoded to
 * ~1 GB (988 MiB RSS, the event loop blocked for over 5 s). 64 KiB is nghttp2's default; gRPC metadata
 * is a few hundred bytes.
 */
export const defaultMaxHeaderListSize = 64 << 10;

/**
 * An encoded header block larger than this many times the list limit cannot decode to a list within it
 * (a field's encoding is never longer than its decoded size, which counts 32 bytes of overhead), so it
 * ends the connection before it is buffered, as golang.org/x/net/http2 does past twice the limit.
 */
export const headerBlockFactor = 2;

/**
 * CONTINUATION frames one header block may take. A sender needs ⌈block / 16 KiB⌉ of them; empty ones
 * cost a buffer entry each (1M of them took 247 MB). nghttp2 allows 8; 32 leaves room for a sender
 * that splits finer than the frame size.
 */
export const maxContinuationFrames = 32;

/**
 * Frames we queue in answer to the peer (SETTINGS and PING ACKs, RST_STREAM, WINDOW_UPDATE) while it does
 * not read: past this the connection is closed. golang.org/x/net/http2's maxQueuedControlFrames; 300k
 * unread PING ACKs held 270 MB before.
 */
export const maxQueuedControlFrames = 10_000;

/** Unwritten bytes at which stream bodies stop being framed until the socket takes more. */
export const writeHighWater = 256 << 10;

/**
 * Unwritten bytes at which the connection is closed: bodies stop at writeHighWater, so only frames a peer
 * provokes without reading (HEADERS of answers, control frames) get this far.
 */
export const maxWriteBacklog = 1 << 20;

/**
 * Our DATA frames are at most this large whatever SETTINGS_MAX_FRAME_SIZE the peer allows, so that one
 * frame cannot take the backlog from the high-water mark past maxWriteBacklog.
 */
export const maxDataFrameSize = 64 << 10;

/** How long a closing connection may take to flush what it queued before its socket is cut. x/net's goAwayTimeout. */
export const closeTimeoutMs = 1000;

/** SETTINGS_MAX_CONCURRENT_STREAMS a server advertises unless told otherwise. */
export const defaultMaxConcurrentStreams = 1000;

/**
 * Streams whose handler may wait to start while handlers of earlier streams (reset by the peer, so no
 * longer counted as open) still run, as a multiple of the concurrent-stream limit: past it the peer is
 * resetting streams faster than we finish them (CVE-2023-44487) and the connection ends with
 * ENHANCE_YOUR_CALM. golang.org/x/net/http2 uses the same factor.
 */
export const maxUnstartedFactor = 4;

/**
 * Milliseconds a server connection may spend handling its frames within busyWindowMs before its reading
 * rests for a timer tick. Deno's runtime polls sockets for readiness only when it goes idle (or every 61
 * turns), and a socket that always has data keeps it busy: a client flooding HEADERS and RST_STREAM kept
 * a `Version` call on another connection unread for 400-580 ms. Resting lets the runtime go idle and read
 * the others. A client that waits for its answers stays far below: 5,000 Version calls in a row never
 * rested, 8,000 eight at a time rested 0-7 times.
 */
export const maxBusyMs = 4;
export const busyWindowMs = 16;
