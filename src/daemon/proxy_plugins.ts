/**
 * `[proxy_plugins]`: plugins served by other processes, registered beside the built-ins. The daemon is
 * their gRPC client on Berth's own HTTP/2 client and GrpcTransport, loaded only when a config names a
 * proxy (the daemon's start path does not need them otherwise).
 */
import type { ProxyPluginConfig } from "./config.ts";
import type { PluginRegistry } from "../plugins/registry.ts";
import { proxySnapshotterPlugin } from "../plugins/snapshots.ts";
import { proxyContentPlugin } from "../plugins/content.ts";

/**
 * Every call to a proxy has a deadline: a remote that accepts and never answers must not hold an
 * unpack or a container start forever. Preparing a snapshot copies its parent on some snapshotters
 * (native), hence minutes rather than seconds. A content proxy's Write and Read streams have none as a
 * whole (a layer takes as long as its download), but the same deadline for each message.
 */
const PROXY_CALL_TIMEOUT_MS = 5 * 60_000;

/** Messages as large as the daemon's own API accepts (a List batch of labelled snapshots). */
const PROXY_MESSAGE_BYTES = 16 << 20;

export async function registerProxyPlugins(
  registry: PluginRegistry,
  proxies: Readonly<Record<string, ProxyPluginConfig>>,
): Promise<void> {
  const entries = Object.entries(proxies);
  if (entries.length === 0) return;
  const [{ GrpcTransport }, { H2ClientConnection }] = await Promise.all([
    import("../client/grpc_transport.ts"),
    import("../h2/client/mod.ts"),
  ]);
  for (const [name, proxy] of entries) {
    const transport = new GrpcTransport({
      connect: () => H2ClientConnection.connect(proxy.address),
      defaultTimeoutMs: PROXY_CALL_TIMEOUT_MS,
      readMaxBytes: PROXY_MESSAGE_BYTES,
      writeMaxBytes: PROXY_MESSAGE_BYTES,
    });
    const options = { address: proxy.address, transport };
    registry.register(
      proxy.type === "content" ? proxyContentPlugin(name, options) : proxySnapshotterPlugin(name, options),
    );
  }
}
