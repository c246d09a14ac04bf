import assert from "node:assert/strict";
import { pickHostPort } from "./ports.ts";

Deno.test("pickHostPort() returns a TCP or UDP port that is free again once chosen", async () => {
  for (const protocol of ["tcp", "udp"] as const) {
    const port = await pickHostPort("127.0.0.1", protocol);
    assert.ok(port > 0 && port < 65536);
    if (protocol === "tcp") Deno.listen({ hostname: "127.0.0.1", port }).close();
  }
});
