import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type ErrorKind, errorKind } from "../base/errors.ts";

/** The one place where the core's error kinds become wire codes (as containerd's errgrpc does). */
const codes: Record<ErrorKind, Code> = {
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  not_implemented: Code.Unimplemented,
  aborted: Code.Aborted,
  canceled: Code.Canceled,
  deadline_exceeded: Code.DeadlineExceeded,
  permission_denied: Code.PermissionDenied,
  internal: Code.Internal,
  unknown: Code.Unknown,
};

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(message, codes[errorKind(err)], undefined, undefined, err);
}

/** Server interceptor: errors thrown by handlers (also mid-stream) leave as the right gRPC code. */
export const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) return res;
    return { ...res, message: mapStreamErrors(res.message) };
  } catch (err) {
    throw toConnectError(err);
  }
};

async function* mapStreamErrors<T>(it: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* it;
  } catch (err) {
    throw toConnectError(err);
  }
}
