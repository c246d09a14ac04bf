/** The server end of Berth's HTTP/2: what the daemon's API server builds on. */

export { H2ServerConnection, type H2ServerOptions } from "./connection.ts";
export { H2ServerStream } from "./stream.ts";
export { ConnSocket, type ServerSocket, whenDrained } from "./conn_socket.ts";
export { H2StreamError } from "../stream.ts";
export { ErrorCode } from "../frames.ts";
export type { HeaderField } from "../hpack.ts";
export { isConnectionSpecific } from "../header_fields.ts";
