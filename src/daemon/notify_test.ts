import assert from "node:assert/strict";
import type { SocketSyscalls } from "../../ffi/socket.ts";
import { SystemdNotifier } from "./notify.ts";

function recording(): { sys: SocketSyscalls; sent: [string, string][] } {
  const sent: [string, string][] = [];
  const sys = {
    sendDatagram: (address: string, data: Uint8Array) => sent.push([address, new TextDecoder().decode(data)]),
  } as unknown as SocketSyscalls;
  return { sys, sent };
}

Deno.test("SystemdNotifier.fromEnv takes NOTIFY_SOCKET out of the environment that shims inherit", () => {
  const { sys, sent } = recording();
  Deno.env.set("NOTIFY_SOCKET", "@systemd-notify-test");
  try {
    const n = SystemdNotifier.fromEnv(sys);
    assert.equal(Deno.env.get("NOTIFY_SOCKET"), undefined);
    n!.notify("READY=1");
    assert.deepEqual(sent, [["@systemd-notify-test", "READY=1"]]);
  } finally {
    Deno.env.delete("NOTIFY_SOCKET");
  }
});

Deno.test("SystemdNotifier.fromEnv is undefined without NOTIFY_SOCKET or for a vsock address", () => {
  Deno.env.delete("NOTIFY_SOCKET");
  assert.equal(SystemdNotifier.fromEnv(recording().sys), undefined);
  Deno.env.set("NOTIFY_SOCKET", "vsock:2:1234");
  assert.equal(SystemdNotifier.fromEnv(recording().sys), undefined);
  assert.equal(Deno.env.get("NOTIFY_SOCKET"), undefined);
});
