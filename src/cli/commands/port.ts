/** `berth port` as docker's: a container's published ports, from its `nerdctl/ports` label. */
import type { Command } from "commander";
import { resolveContainer } from "../../docker/names.ts";
import { hostAddress, portsOf } from "../../docker/status.ts";
import { withClient } from "../context.ts";

export function portCommand(program: Command): void {
  program.command("port").description("List port mappings or a specific mapping for the container")
    .argument("<container>")
    .argument("[private_port]", "PORT or PORT/PROTO (default tcp)")
    .action(async (ref: string, privatePort: string | undefined, _opts: unknown, cmd: Command) => {
      const lines = await withClient(cmd, async (client) => {
        const c = await resolveContainer(client, ref);
        const ports = portsOf(c.labels);
        if (privatePort === undefined) {
          return ports.map((p) => `${p.ContainerPort}/${p.Protocol} -> ${hostAddress(p)}`);
        }
        const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(privatePort);
        if (!m) throw new Error(`Invalid port "${privatePort}": use PORT or PORT/PROTO, e.g. 80/tcp`);
        const [number, proto] = [Number(m[1]), (m[2] ?? "tcp").toLowerCase()];
        const found = ports.filter((p) => p.ContainerPort === number && p.Protocol === proto);
        if (found.length === 0) throw new Error(`No public port "${number}/${proto}" published for ${ref}`);
        return found.map(hostAddress);
      });
      for (const line of lines) console.log(line);
    });
}
