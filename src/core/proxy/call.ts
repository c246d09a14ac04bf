/**
 * Calls to `[proxy_plugins]`: services of another process (a snapshotter, a content store) that the
 * daemon reaches as a gRPC client. Their wire errors become the core's kinds here, once for all of them.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BerthError, type ErrorKind } from "../../base/errors.ts";

/** A proxy plugin as its errors name it. */
export interface ProxyName {
  /** What it is and its name: `Proxy snapshotter "stargz"`. */
  readonly label: string;
  /** Its unix socket. */
  readonly address: string;
}

/** Connect codes that mean the remote was not reached or went away mid-call. */
const unreachable = new Set([Code.Unavailable, Code.DeadlineExceeded]);

const kindOfCode: Partial<Record<Code, ErrorKind>> = {
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.OutOfRange]: "invalid_argument",
  [Code.Unimplemented]: "not_implemented",
  [Code.Aborted]: "aborted",
  [Code.Canceled]: "canceled",
  [Code.PermissionDenied]: "permission_denied",
  [Code.Unknown]: "unknown",
};

/**
 * Runs one call to the proxy: a wire error becomes the core's kind with the remote's message, and an
 * unreachable remote an unavailable error that names the proxy and its socket.
 */
export async function callProxy<T>(proxy: ProxyName, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw proxyError(proxy, err);
  }
}

/** The core's error for what a call to the proxy threw (anything but a ConnectError is returned as is). */
export function proxyError(proxy: ProxyName, err: unknown): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (unreachable.has(err.code)) {
    return new BerthError(
      "unavailable",
      `${proxy.label} at ${proxy.address} is unavailable: ${err.rawMessage}`,
      { cause: err },
    );
  }
  return new BerthError(kindOfCode[err.code] ?? "internal", err.rawMessage, { cause: err });
}

/**
 * The remote's name of one namespace's object (a snapshot key, an ingest ref): the remote knows no
 * namespaces, so the name carries it, as containerd's metadata layer prefixes them (a namespace never
 * holds a slash).
 */
export function remoteName(ns: string, name: string): string {
  return `${ns}/${name}`;
}

/** The namespace and name a remote name carries, or undefined when it carries none. */
export function splitRemoteName(remote: string): { namespace: string; name: string } | undefined {
  const slash = remote.indexOf("/");
  if (slash <= 0) return undefined;
  return { namespace: remote.slice(0, slash), name: remote.slice(slash + 1) };
}
