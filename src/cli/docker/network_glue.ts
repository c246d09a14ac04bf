/**
 * Networks for a Docker-style create: until src/docker's network store lands, only host and none.
 * TEMPORARY (session 4): replaced by the network store, hosts files and hook of src/docker.
 */
import type { DockerPaths } from "../../docker/paths.ts";
import type * as oci from "../../oci/mod.ts";

export function checkNetwork(_paths: DockerPaths, name: string): Promise<void> {
  return Promise.reject(new Error(`Network "${name}" is not available yet`));
}
export function networkHooks(_paths: DockerPaths): oci.Spec["hooks"] {
  return undefined;
}
export async function initialHosts(paths: DockerPaths, id: string, hostname: string, name: string) {
  const dir = `${paths.dataStore}/etchosts/${paths.namespace}/${id}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/hosts`,
    `127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 ${hostname} ${name}\n`,
  );
  return `${dir}/hosts`;
}
export async function forgetHosts(paths: DockerPaths, id: string) {
  await Deno.remove(`${paths.dataStore}/etchosts/${paths.namespace}/${id}`, { recursive: true }).catch(
    () => {},
  );
}
export async function resolvConf(dns?: readonly string[]) {
  if (dns?.length) return dns.map((d) => `nameserver ${d}\n`).join("");
  const text = await Deno.readTextFile("/etc/resolv.conf").catch(() => "");
  return text.split("\n").filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l)).join("\n");
}
