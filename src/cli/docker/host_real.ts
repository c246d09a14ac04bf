/** The real host behind DockerHost: src/docker's networks, hosts files and volumes, and the host's ports. */
import { copyUp, createVolume, inspectVolume, removeVolume } from "../../docker/volumes.ts";
import { resolveInRoot } from "../../base/root_path.ts";
import type { DockerHost } from "./host.ts";

function canBind(hostIP: string, port: number, protocol: "tcp" | "udp"): number | undefined {
  const hostname = hostIP === "" ? "0.0.0.0" : hostIP;
  try {
    if (protocol === "udp") {
      const sock = Deno.listenDatagram({ transport: "udp", hostname, port });
      const got = (sock.addr as Deno.NetAddr).port;
      sock.close();
      return got;
    }
    const l = Deno.listen({ hostname, port });
    const got = (l.addr as Deno.NetAddr).port;
    l.close();
    return got;
  } catch {
    return undefined;
  }
}

export const realHost: DockerHost = {
  async checkNetwork(paths, name) {
    const { checkNetwork } = await import("./network_glue.ts");
    await checkNetwork(paths, name);
  },
  async networkHooks(paths) {
    const { networkHooks } = await import("./network_glue.ts");
    return networkHooks(paths);
  },
  async initialHosts(paths, id, hostname, name) {
    const { initialHosts } = await import("./network_glue.ts");
    return await initialHosts(paths, id, hostname, name);
  },
  async forgetHosts(paths, id) {
    const { forgetHosts } = await import("./network_glue.ts");
    await forgetHosts(paths, id);
  },
  async resolvConf(dns) {
    const { resolvConf } = await import("./network_glue.ts");
    return await resolvConf(dns);
  },
  async volume(paths, name, labels) {
    const before = name ? await inspectVolume(paths, name).catch(() => undefined) : undefined;
    const v = await createVolume(paths, name, name ? labels : {});
    const dataDir = v.Mountpoint;
    const empty = (await Array.fromAsync(Deno.readDir(dataDir))).length === 0;
    return { name: v.Name, dataDir, created: before === undefined, empty };
  },
  async removeVolume(paths, name) {
    await removeVolume(paths, name, { inUseBy: new Set() });
  },
  async copyUp(rootfs, target, dataDir) {
    let source: string;
    try {
      source = resolveInRoot(rootfs, target, { followLast: true });
    } catch {
      return; // nothing in the image at that path: the volume starts empty
    }
    await copyUp(source, dataDir);
  },
  freePort(hostIP, protocol) {
    const port = canBind(hostIP, 0, protocol);
    if (port === undefined) throw new Error(`No free ${protocol} port on ${hostIP}`);
    return port;
  },
  portFree(hostIP, port, protocol) {
    return canBind(hostIP, port, protocol) !== undefined;
  },
};
