/**
 * Exec and attach over an upgraded connection, as the kubelet's remotecommand server runs them: the
 * client opens one stream per channel, named by its `streamType` header (error, stdin, stdout, stderr,
 * and resize for a terminal on v3 and later); once the expected set is there (or the creation timeout
 * passed), the runtime runs with them, the output streams are half-closed, and the outcome goes on the
 * error stream (v4: a metav1.Status in JSON; v2/v3: the message of a failure).
 *
 * channel.k8s.io (v1) is not served: its error stream is reset before anything can be reported on it.
 * client-go offers it last, after v4, v3 and v2.
 */

import type { BasicLogger } from "../../../base/log.ts";
import { SpdyConnection, type SpdyLimits, type SpdyStream, type SpdyTransport } from "./spdy/mod.ts";
import { TerminalSizes } from "./resize.ts";
import { type Status, statusBytes } from "./status.ts";
import type { StreamingIO } from "./types.ts";

export const remoteCommandProtocols = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
] as const;

type StreamType = "error" | "stdin" | "stdout" | "stderr" | "resize";

export interface RemoteCommandOptions {
  /** Runs the command with the client's streams; says how it went. */
  readonly run: (io: StreamingIO) => Promise<Status>;
  /** The negotiated protocol, one of remoteCommandProtocols. */
  readonly protocol: string;
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
  /** How long the client has to open its streams (the kubelet's 30 s). */
  readonly streamCreationTimeoutMs: number;
  readonly limits?: Partial<SpdyLimits>;
  /** Bytes read past the HTTP request head. */
  readonly initial?: Uint8Array;
  /** The server is closing. */
  readonly signal: AbortSignal;
  readonly logger?: BasicLogger;
  /** Names the session in logs: "exec in c1". */
  readonly what: string;
}

/** Which streams the client opens, after the kubelet's expectedStreams count. */
function expectedStreams(o: RemoteCommandOptions): Set<StreamType> {
  const set = new Set<StreamType>(["error"]);
  if (o.stdin) set.add("stdin");
  if (o.stdout) set.add("stdout");
  // With a terminal, stderr is merged into stdout and no stream is opened for it.
  if (o.stderr && !o.tty) set.add("stderr");
  if (o.tty && o.protocol !== "v2.channel.k8s.io") set.add("resize");
  return set;
}

/** Serves one exec or attach session on `conn` (already upgraded); resolves when it is closed. */
export async function serveRemoteCommand(conn: SpdyTransport, options: RemoteCommandOptions): Promise<void> {
  const expected = expectedStreams(options);
  const streams = new Map<StreamType, SpdyStream>();
  const complete = Promise.withResolvers<void>();
  const session = new SpdyConnection(conn, {
    limits: options.limits,
    initial: options.initial,
    onStream: (stream) => {
      const type = stream.header("streamType") as StreamType;
      // Unexpected or repeated types are refused: the kubelet would hand a stream the request did
      // not ask for to the runtime.
      if (!expected.has(type) || streams.has(type)) {
        options.logger?.warn(`Refused a ${JSON.stringify(type)} stream for ${options.what}`);
        return false;
      }
      streams.set(type, stream);
      if (streams.size === expected.size) complete.resolve();
      return true;
    },
  });
  const stop = options.signal;
  const onStop = () => session.destroy("The streaming server is closing");
  stop.addEventListener("abort", onStop, { once: true });
  try {
    if (!await waitFor(complete.promise, session, options.streamCreationTimeoutMs)) {
      options.logger?.warn(
        `Gave up on ${options.what}: the client opened ${
          [...streams.keys()].join(", ") || "no streams"
        } of ` +
          `${[...expected].join(", ")} within ${options.streamCreationTimeoutMs} ms`,
      );
      return;
    }
    const io: StreamingIO = {
      stdin: streams.get("stdin")?.readable,
      stdout: streams.get("stdout")?.writable,
      stderr: streams.get("stderr")?.writable,
      tty: options.tty,
      resize: streams.has("resize")
        ? new TerminalSizes(streams.get("resize")!.readable)
        : TerminalSizes.none(),
      signal: AbortSignal.any([session.signal, stop]),
    };
    const status = await options.run(io);
    await report(streams, status, options.protocol);
  } finally {
    stop.removeEventListener("abort", onStop);
    await session.close();
  }
}

/** Whether `ready` settled before the timeout and before the session ended. */
async function waitFor(ready: Promise<void>, session: SpdyConnection, timeoutMs: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = Promise.withResolvers<boolean>();
  const onEnd = () => ended.resolve(false);
  session.signal.addEventListener("abort", onEnd, { once: true });
  try {
    return await Promise.race([
      ready.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
      ended.promise,
    ]);
  } finally {
    clearTimeout(timer);
    session.signal.removeEventListener("abort", onEnd);
  }
}

/** Half-closes the output streams (after what the runtime wrote), then writes the outcome. */
async function report(streams: Map<StreamType, SpdyStream>, status: Status, protocol: string): Promise<void> {
  const ignore = () => {};
  await Promise.all([streams.get("stdout")?.end().catch(ignore), streams.get("stderr")?.end().catch(ignore)]);
  const error = streams.get("error");
  if (!error) return;
  const bytes = statusBytes(status, protocol);
  if (bytes) await error.write(bytes).catch(ignore);
  await error.end().catch(ignore);
}
