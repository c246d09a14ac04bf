/**
 * What the CRI streaming server asks of the runtime, and the requests it hands out URLs for: the
 * contract between src/core/cri/streaming and the CRI layer (containerd's streaming.Runtime).
 */

/** A terminal size the client reported (columns and rows, each 1 to 65535). */
export interface TerminalSize {
  readonly width: number;
  readonly height: number;
}

/** The client's streams for an exec or an attach. */
export interface StreamingIO {
  /** The client's input, when it asked for stdin; it ends when the client closes its stdin. */
  readonly stdin?: ReadableStream<Uint8Array>;
  /** To the client's stdout, when it asked for it (with a terminal: everything the terminal shows). */
  readonly stdout?: WritableStream<Uint8Array>;
  /** To the client's stderr, when it asked for it; never with a terminal. */
  readonly stderr?: WritableStream<Uint8Array>;
  readonly tty: boolean;
  /**
   * Terminal sizes as the client reports them (terminal sessions on protocol v3 and later; otherwise it
   * ends at once). Sizes are state, not events: a consumer that falls behind gets the latest one.
   * It ends when the session does.
   */
  readonly resize: AsyncIterable<TerminalSize>;
  /** Aborted when the client goes away or the server closes: the runtime stops what it started. */
  readonly signal: AbortSignal;
}

/** A forwarded connection's bytes: from the client, and to the client. */
export interface PortStream {
  /** What the client sends; it ends when the client half-closes. */
  readonly readable: ReadableStream<Uint8Array>;
  /** What the client receives; close() half-closes towards it. */
  readonly writable: WritableStream<Uint8Array>;
  /** Aborted when the client resets the stream or the connection ends. */
  readonly signal: AbortSignal;
}

/**
 * The runtime behind the streaming server (the CRI layer implements it over tasks and the pod's
 * network namespace). Each method resolves when the session is over, having written all output: the
 * server half-closes the output streams it was given and reports the outcome after that.
 */
export interface StreamingRuntime {
  /** Runs `cmd` in the container; resolves to its exit code (0 to 255). */
  exec(containerId: string, cmd: readonly string[], io: StreamingIO): Promise<number>;
  /** Attaches to the container's main process until the session ends. */
  attach(containerId: string, io: StreamingIO): Promise<void>;
  /** Connects `stream` to `port` inside the pod sandbox's network namespace until both directions end. */
  portForward(podSandboxId: string, port: number, stream: PortStream): Promise<void>;
}

/** The fields of the CRI ExecRequest the streaming server uses. */
export interface ExecRequest {
  readonly containerId: string;
  readonly cmd: readonly string[];
  readonly tty?: boolean;
  readonly stdin?: boolean;
  readonly stdout?: boolean;
  readonly stderr?: boolean;
}

/** The fields of the CRI AttachRequest the streaming server uses. */
export interface AttachRequest {
  readonly containerId: string;
  readonly tty?: boolean;
  readonly stdin?: boolean;
  readonly stdout?: boolean;
  readonly stderr?: boolean;
}

/** The fields of the CRI PortForwardRequest the streaming server uses. */
export interface PortForwardRequest {
  readonly podSandboxId: string;
  /**
   * The ports the caller named. Not enforced, as in the kubelet's and containerd's SPDY server: each
   * stream's `port` header decides (the list only drives their WebSocket protocol).
   */
  readonly port?: readonly number[];
}
