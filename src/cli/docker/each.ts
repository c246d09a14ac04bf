/**
 * Docker's way with several containers on one command line: each is done in turn, one that fails is
 * reported (`berth: <ref>: <why>`) and the rest still done, and the command exits 1 at the end.
 */
import { ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { resolveContainer } from "../../docker/names.ts";
import { type GlobalOptions, withClient } from "../context.ts";
import { exitWith } from "../task_io.ts";

export const describeError = (err: unknown): string =>
  err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);

/** Runs `fn` on the container each ref names; exits 1 after all when any failed. */
export async function forEachContainer(
  cmd: Command | GlobalOptions,
  refs: readonly string[],
  fn: (client: BerthClient, container: Container, ref: string) => Promise<void>,
): Promise<void> {
  let failed = false;
  await withClient(cmd, async (client) => {
    for (const ref of refs) {
      try {
        await fn(client, await resolveContainer(client, ref), ref);
      } catch (err) {
        console.error(`berth: ${ref}: ${describeError(err)}`);
        failed = true;
      }
    }
  });
  if (failed) exitWith(1);
}
