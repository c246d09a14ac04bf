/** The client end of Berth's HTTP/2: what the CLI's gRPC transport builds on. */

export { H2ClientConnection, type H2ClientOptions } from "./connection.ts";
export { H2ClientStream, type ResponseHead } from "./stream.ts";
export { H2StreamError } from "../stream.ts";
export { ErrorCode } from "../frames.ts";
export type { HeaderField } from "../hpack.ts";
