/**
 * The host-side pieces a Docker-style create needs, behind one interface: networks and their hosts
 * files (src/docker/networks.ts, hosts.ts, hook.ts), volumes (src/docker/volumes.ts), host ports. Loaded
 * only by the verbs that make containers; the real one is host_real.ts, tests may pass their own.
 */
import type { DockerPaths } from "../../docker/paths.ts";
import type * as oci from "../../oci/mod.ts";

export interface HostVolume {
  readonly name: string;
  /** The folder mounted into the container. */
  readonly dataDir: string;
  /** Made by this call. */
  readonly created: boolean;
  /** Nothing in it yet: the image's content at the target is copied up. */
  readonly empty: boolean;
}

export interface DockerHost {
  /** Throws a clear error unless network `name` exists (the default `bridge` is made on first use). */
  checkNetwork(paths: DockerPaths, name: string): Promise<void>;
  /** The OCI hooks that attach and detach a container's networks. */
  networkHooks(paths: DockerPaths): Promise<oci.Spec["hooks"]>;
  /** Writes the container's first /etc/hosts and returns its path. */
  initialHosts(paths: DockerPaths, id: string, hostname: string, name: string): Promise<string>;
  /** Forgets the container's hosts file (after a failed create; the hook does it otherwise). */
  forgetHosts(paths: DockerPaths, id: string): Promise<void>;
  /** /etc/resolv.conf for a container: the host's without loopback resolvers, or `dns`. */
  resolvConf(dns?: readonly string[]): Promise<string>;
  /** The named volume (made when missing) or a new anonymous one. */
  volume(paths: DockerPaths, name: string | undefined, labels: Record<string, string>): Promise<HostVolume>;
  removeVolume(paths: DockerPaths, name: string): Promise<void>;
  /** Copies the image's content at `target` (inside `rootfs`) into a new volume's `dataDir`. */
  copyUp(rootfs: string, target: string, dataDir: string): Promise<void>;
  /** A host port nothing listens on. */
  freePort(hostIP: string, protocol: "tcp" | "udp"): number;
  /** Whether `port` can be bound on `hostIP`. */
  portFree(hostIP: string, port: number, protocol: "tcp" | "udp"): boolean;
}
