/**
 * The annotations a Docker-style container's network attachment reads (nerdctl's label keys, and
 * Berth's aliases): the run command puts them on the container and in its OCI spec. A leaf, so that the
 * label readers of the CLI do not load the CNI runner with them.
 */
/** The annotation keys read (nerdctl's labels, and Berth's aliases); the run command writes them. */
export const NETWORK_ANNOTATIONS = {
  name: "nerdctl/name",
  hostname: "nerdctl/hostname",
  namespace: "nerdctl/namespace",
  networks: "nerdctl/networks",
  ports: "nerdctl/ports",
  aliases: "berth/aliases",
} as const;

/** A published port as nerdctl records it in `nerdctl/ports`. */
export interface PortLabel {
  HostPort: number;
  ContainerPort: number;
  Protocol: string;
  HostIP: string;
}
