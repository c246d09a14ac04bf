/**
 * `berth internal …`: entry points other programs call, not people. `oci-hook <event>` is the OCI hook
 * runc runs for Docker-style containers (src/docker/hook.ts), with the container's state on stdin; its
 * paths come from the global flags, which the hook's environment sets (BERTH_DATA_ROOT, BERTH_ADDRESS,
 * BERTH_NAMESPACE, BERTH_CNI_PATH, BERTH_CNI_NETCONFPATH).
 */
import type { Command } from "commander";
import { type HookEvent, type HookState, ociHook } from "../../docker/hook.ts";
import { dockerPaths } from "../context.ts";

async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

export function internalCommand(program: Command): void {
  const internal = program.command("internal", { hidden: true }).description(
    "Entry points for runc and shims",
  );

  internal.command("oci-hook").description("Run the networking OCI hook (createRuntime or postStop)")
    .argument("<event>")
    .action(async (event: string, _opts: unknown, cmd: Command) => {
      if (event !== "createRuntime" && event !== "postStop") {
        throw new Error(`Unknown OCI hook event "${event}": use createRuntime or postStop`);
      }
      const text = await readStdin();
      let state: HookState;
      try {
        state = JSON.parse(text) as HookState;
      } catch (err) {
        throw new Error(`The OCI state on stdin is not JSON: ${(err as Error).message}`);
      }
      // Errors of createRuntime propagate (exit 1, message on stderr: runc shows it); postStop never throws.
      await ociHook(event as HookEvent, state, dockerPaths(cmd));
    });
}
