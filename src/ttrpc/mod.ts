/** containerd's ttrpc protocol: the daemon ⇄ shim wire (Task API, Events.Forward). */

export {
  type CallOptions,
  type ConnectOptions,
  createTtrpcClient,
  DEFAULT_CALL_TIMEOUT_MS,
  NAMESPACE_METADATA_KEY,
  socketPath,
  TtrpcClient,
  type TtrpcServiceClient,
} from "./client.ts";
export {
  type TtrpcHandlerContext,
  TtrpcServer,
  type TtrpcServerOptions,
  type TtrpcServiceImpl,
} from "./server.ts";
export { Code, codeOf, TtrpcError } from "./status.ts";
export type { Metadata } from "./messages.ts";
export { Flags, MAX_MESSAGE_LENGTH, MessageType } from "./frame.ts";
