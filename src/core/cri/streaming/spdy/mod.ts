/** SPDY/3.1, server side, as Kubernetes' httpstream/spdy speaks it: what the streaming handlers use. */
export {
  defaultSpdyLimits,
  SpdyConnection,
  type SpdyConnectionOptions,
  type SpdyLimits,
  type SpdyTransport,
} from "./connection.ts";
export { SpdyStream, SpdyStreamError } from "./stream.ts";
export { RstStatus } from "./frames.ts";
