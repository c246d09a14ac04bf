/** `berth ps` as docker's: the namespace's containers, running ones unless -a. */
import type { Command } from "commander";
import { decodeSpec } from "../../oci/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { listContainers } from "../../docker/names.ts";
import { matchesFilters, parsePsFilters, type PsEntry, psEntry } from "../../docker/ps.ts";
import { containerStates } from "../../docker/status.ts";
import { renderTemplate } from "../../docker/template.ts";
import { repeatable, withClient } from "../context.ts";
import { printTable } from "../table.ts";

interface PsFlags {
  all?: boolean;
  quiet?: boolean;
  /** False with --no-trunc (commander's negatable flag). */
  trunc?: boolean;
  format?: string;
  filter?: string[];
  last?: string;
  latest?: boolean;
}

/** The process args of a container's spec (empty when it has none or it cannot be read). */
export function specArgs(container: Pick<Container, "spec">): string[] {
  try {
    return container.spec?.value.length ? decodeSpec(container.spec.value).process?.args ?? [] : [];
  } catch {
    return [];
  }
}

const COLUMNS: readonly [string, keyof PsEntry][] = [
  ["CONTAINER ID", "ID"],
  ["IMAGE", "Image"],
  ["COMMAND", "Command"],
  ["CREATED", "RunningFor"],
  ["STATUS", "Status"],
  ["PORTS", "Ports"],
  ["NAMES", "Names"],
];

export function psCommand(program: Command): void {
  program.command("ps").description("List containers (running ones unless --all)")
    .option("-a, --all", "show all containers, not only running ones")
    .option("-q, --quiet", "only display container IDs")
    .option("--no-trunc", "don't truncate output")
    .option("--format <format>", '"table", "json" or a Go template such as {{.Names}}')
    .option("-f, --filter <filter>", "filter output: label=KEY[=VALUE], name=N, status=S, id=ID", repeatable)
    .option("-n, --last <n>", "show the n last created containers (all states)")
    .option("-l, --latest", "show the latest created container (all states)")
    .action(async (opts: PsFlags, cmd: Command) => {
      const filters = parsePsFilters(opts.filter ?? []);
      const last = opts.latest ? 1 : opts.last === undefined ? undefined : Number(opts.last);
      if (last !== undefined && !(Number.isInteger(last) && last >= 0)) {
        throw new Error(`Invalid --last "${opts.last}": give a count`);
      }
      const entries = await withClient(cmd, async (client) => {
        const all = await listContainers(client);
        const states = await containerStates(client, all);
        const now = new Date();
        const newest = all.toSorted((a, b) =>
          Number((b.createdAt?.seconds ?? 0n) - (a.createdAt?.seconds ?? 0n)) ||
          (b.createdAt?.nanos ?? 0) - (a.createdAt?.nanos ?? 0)
        );
        const everyState = opts.all || last !== undefined || filters.has("status");
        const shown = newest.filter((c) => {
          const state = states.get(c.id)!;
          return (everyState || state.running) && matchesFilters(c, state, filters);
        });
        return shown.slice(0, last || undefined).map((c) =>
          psEntry(c, specArgs(c), states.get(c.id)!, { noTrunc: opts.trunc === false, now })
        );
      });
      printEntries(entries, opts);
    });
}

function printEntries(entries: readonly PsEntry[], opts: PsFlags): void {
  if (opts.quiet) {
    for (const e of entries) console.log(e.ID);
    return;
  }
  const format = opts.format ?? "table";
  if (format === "table") {
    printTable([COLUMNS.map(([h]) => h), ...entries.map((e) => COLUMNS.map(([, k]) => e[k]))], 3);
  } else if (format === "json" || format === "{{json .}}") {
    for (const e of entries) console.log(JSON.stringify(e));
  } else {
    for (const e of entries) console.log(renderTemplate(format, e));
  }
}
