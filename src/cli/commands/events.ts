import type { Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { withClient } from "../context.ts";

export function eventsCommand(program: Command): void {
  program.command("events").alias("event").description("Display containerd events").argument(
    "[filters...]",
    "filters, e.g. topic==/namespaces/create",
  ).action(async (filters: string[], _o, cmd: Command) => {
    // Every event schema of the API: loaded here, not by every berth command at start.
    const { eventSchemas, schemaDecoder } = await import("../../base/event_types.ts");
    const decode = schemaDecoder(eventSchemas());
    await withClient(cmd, async (client) => {
      const abort = new AbortController();
      const stop = () => abort.abort();
      Deno.addSignalListener("SIGINT", stop);
      try {
        for await (
          const env of client.events.subscribe({ filters }, { signal: abort.signal, timeoutMs: 0 })
        ) {
          const when = env.timestamp ? timestampDate(env.timestamp).toISOString() : "";
          const payload = env.event ? decode(env.event) : undefined;
          console.log(when, env.namespace, env.topic, payload ? JSON.stringify(payload) : "");
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
      }
    });
  });
}
