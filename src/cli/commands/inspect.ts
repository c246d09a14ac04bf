/** `berth inspect` as docker's: a JSON array of container documents, or a template per container. */
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { decodeSpec, type Spec } from "../../oci/mod.ts";
import { HostsStore } from "../../docker/hosts.ts";
import { inspectContainer, type NetworkAddress } from "../../docker/inspect.ts";
import { LABELS } from "../../docker/labels.ts";
import { listNetworks } from "../../docker/networks.ts";
import { resolveContainer } from "../../docker/names.ts";
import { containerDir, type DockerPaths } from "../../docker/paths.ts";
import { containerState } from "../../docker/status.ts";
import { renderTemplate } from "../../docker/template.ts";
import { volumesDir } from "../../docker/volumes.ts";
import { dockerPaths, withClient } from "../context.ts";
import { describeError } from "../docker/each.ts";
import { exitWith } from "../task_io.ts";

const exists = (path: string) => Deno.stat(path).then(() => path, () => undefined);

/** The container's addresses from the hosts store, with each network's prefix length and gateway. */
async function addressesOf(paths: DockerPaths, id: string): Promise<Record<string, NetworkAddress>> {
  const meta = (await new HostsStore(paths.dataStore, paths.namespace).list()).find((m) => m.id === id);
  if (!meta) return {};
  const known = await listNetworks(paths).catch(() => []);
  const out: Record<string, NetworkAddress> = {};
  for (const [name, ip] of Object.entries(meta.networks)) {
    const subnet = known.find((n) => n.name === name)?.subnets[0];
    const prefixLen = subnet ? Number(subnet.subnet.split("/")[1]) : undefined;
    out[name] = { ip, prefixLen, gateway: subnet?.gateway };
  }
  return out;
}

/** One container's inspect document. */
export async function inspectDocument(
  client: BerthClient,
  paths: DockerPaths,
  c: Container,
): Promise<Record<string, unknown>> {
  let spec: Spec | undefined;
  try {
    spec = c.spec?.value.length ? decodeSpec(c.spec.value) : undefined;
  } catch { /* a record without a readable spec still inspects */ }
  const dir = c.labels[LABELS.stateDir] || containerDir(paths, c.id);
  const hosts = new HostsStore(paths.dataStore, paths.namespace).hostsPath(c.id);
  return inspectContainer(c, {
    spec,
    state: await containerState(client, c),
    networks: await addressesOf(paths, c.id),
    files: {
      resolvConf: await exists(`${dir}/resolv.conf`),
      hostname: await exists(`${dir}/hostname`),
      hosts: await exists(hosts),
      log: await exists(`${dir}/${c.id}-json.log`),
    },
    volumesDir: volumesDir(paths),
  });
}

export function inspectCommand(program: Command): void {
  program.command("inspect").description("Return low-level information on containers")
    .argument("<container...>")
    .option("--type <type>", 'only "container" is known')
    .option("-f, --format <template>", "a Go template such as {{.State.Status}} or {{json .Config}}")
    .option("-s, --size", "ignored: sizes are not computed")
    .action(async (refs: string[], opts: { type?: string; format?: string }, cmd: Command) => {
      if (opts.type !== undefined && opts.type !== "container") {
        throw new Error(`Cannot inspect objects of type "${opts.type}": only "container" is known`);
      }
      const paths = dockerPaths(cmd);
      const docs: Record<string, unknown>[] = [];
      let failed = false;
      await withClient(cmd, async (client) => {
        for (const ref of refs) {
          try {
            docs.push(await inspectDocument(client, paths, await resolveContainer(client, ref)));
          } catch (err) {
            console.error(`berth: ${describeError(err)}`);
            failed = true;
          }
        }
      });
      if (opts.format) { for (const d of docs) console.log(renderTemplate(opts.format, d)); }
      else console.log(JSON.stringify(docs, null, 4));
      if (failed) exitWith(1);
    });
}
