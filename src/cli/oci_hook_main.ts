/**
 * `berth internal oci-hook <event>` as runc runs it (a foreign shim's containers: Berth's own shim does
 * the work in process): its paths come from the environment the hook entry sets, so main.ts dispatches
 * here without building the CLI's commander program, which is most of a hook process's start-up. Output
 * and exit status are the CLI's: `berth: <message>` on stderr and 1 when createRuntime fails.
 */
import { hookEnvPaths, type HookState, ociHook } from "../docker/hook.ts";

export async function ociHookProcess(event: string): Promise<number> {
  try {
    if (event !== "createRuntime" && event !== "postStop") {
      throw new Error(`Unknown OCI hook event "${event}": use createRuntime or postStop`);
    }
    const text = await new Response(Deno.stdin.readable).text();
    let state: HookState;
    try {
      state = JSON.parse(text) as HookState;
    } catch (err) {
      throw new Error(`The OCI state on stdin is not JSON: ${(err as Error).message}`);
    }
    await ociHook(event, state, hookEnvPaths((name) => Deno.env.get(name)));
    return 0;
  } catch (err) {
    console.error(`berth: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
