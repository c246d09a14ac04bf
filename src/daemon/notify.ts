/**
 * systemd's readiness protocol (sd_notify(3)), for `Type=notify` units like containerd's: one datagram
 * of `KEY=value` lines to the unix socket named by NOTIFY_SOCKET (a path, or `@name` for an abstract one).
 */

import { type SocketSyscalls, socketSyscalls } from "../../ffi/socket.ts";

export class SystemdNotifier {
  readonly address: string;
  readonly #syscalls: SocketSyscalls;

  constructor(address: string, syscalls: SocketSyscalls = socketSyscalls()) {
    this.address = address;
    this.#syscalls = syscalls;
  }

  /**
   * The notifier systemd asked for, or undefined when not started by systemd (or over vsock, which
   * Berth does not speak). NOTIFY_SOCKET leaves the environment, as sd_notify's unset_environment does:
   * shims and containers inherit the daemon's environment, and a shim telling systemd it is ready or
   * stopping would be taken for the daemon.
   */
  static fromEnv(syscalls?: SocketSyscalls): SystemdNotifier | undefined {
    const address = Deno.env.get("NOTIFY_SOCKET");
    Deno.env.delete("NOTIFY_SOCKET");
    if (!address || (!address.startsWith("/") && !address.startsWith("@"))) return undefined;
    return new SystemdNotifier(address, syscalls);
  }

  /** Sends `state` (e.g. "READY=1"); throws naming the socket when systemd is not listening. */
  notify(state: string): void {
    this.#syscalls.sendDatagram(this.address, new TextEncoder().encode(state));
  }
}
