/**
 * The CRI streaming server (exec, attach, port-forward over SPDY/3.1), for the CRI layer: it starts a
 * StreamingServer with its StreamingRuntime and returns getExec/getAttach/getPortForward URLs from the
 * CRI calls.
 */
export { StreamingServer, type StreamingServerOptions } from "./server.ts";
export type {
  AttachRequest,
  ExecRequest,
  PortForwardRequest,
  PortStream,
  StreamingIO,
  StreamingRuntime,
  TerminalSize,
} from "./types.ts";
export type { SpdyLimits } from "./spdy/mod.ts";
export type { HeadLimits } from "./http1.ts";
export type { RequestCacheOptions } from "./request_cache.ts";
