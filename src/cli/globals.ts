/**
 * The global flags every verb shares and the client they name. No Docker paths here: their address
 * hash loads node:crypto, which (with node-compat) costs `ctr run` ~20 ms at start (context.ts has them).
 */
import type { Command } from "commander";
import { BerthClient } from "../client/mod.ts";

export {
  clientDefaults,
  type ClientOptions,
  defaultSnapshotter,
  type GlobalOptions,
  globalsOf,
  parseDuration,
  repeatable,
} from "./global_flags.ts";
import { type ClientOptions, globalsOf, parseDuration } from "./global_flags.ts";

/** The namespace the global flags name. */
export function namespaceOf(cmd: Command): string {
  return globalsOf(cmd).namespace;
}

/** The client the global flags name. */
export function clientOf(g: ClientOptions): BerthClient {
  return new BerthClient(g.address, {
    namespace: g.namespace,
    timeoutMs: g.timeout ? parseDuration(g.timeout) : 0,
  });
}

/** The client for a command, from the global flags on the root program. */
export function clientFor(cmd: Command): BerthClient {
  return clientOf(globalsOf(cmd));
}

/** Runs `fn` with a client that is closed afterwards, whatever happens. */
export async function withClient<T>(
  cmd: Command | ClientOptions,
  fn: (client: BerthClient) => Promise<T>,
): Promise<T> {
  const client = "opts" in cmd ? clientFor(cmd) : clientOf(cmd);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
