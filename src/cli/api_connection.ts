/**
 * A connection to the daemon the global flags name. Apart from global_flags.ts, so that a path that parses
 * those flags but makes its call without connect-es (ctr_run_one_call.ts) does not load it.
 */
import { ApiConnection } from "../client/connection.ts";
import { type ClientOptions, parseDuration } from "./global_flags.ts";

/**
 * A connection to the daemon the global flags name, without service getters: a verb that calls one or
 * two services types them itself (`conn.service(Transfer)`) and builds no other descriptor.
 */
export function connectionOf(g: ClientOptions): ApiConnection {
  return new ApiConnection(g.address, {
    namespace: g.namespace,
    timeoutMs: g.timeout ? parseDuration(g.timeout) : 0,
  });
}

/** Runs `fn` with a connection that is closed afterwards, whatever happens. */
export async function withConnection<T>(
  g: ClientOptions,
  fn: (conn: ApiConnection) => Promise<T>,
): Promise<T> {
  const conn = connectionOf(g);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}
