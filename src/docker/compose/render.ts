/**
 * `berth compose config`: the loaded project written back as a compose file in the long forms, so
 * what Berth understood (interpolated, merged, defaults applied) can be read and diffed.
 */
import { stringify } from "yaml";
import type { ComposeProject, ServiceConfig } from "./model.ts";

export function renderProject(project: ComposeProject): string {
  const services = Object.fromEntries(
    Object.values(project.services).map((s) => [s.name, renderService(s)]),
  );
  const strip = <T extends { labels: Readonly<Record<string, string>> }>(v: T) =>
    Object.keys(v.labels).length ? v : { ...v, labels: undefined };
  const doc = {
    name: project.name,
    services,
    ...(Object.keys(project.networks).length
      ? {
        networks: Object.fromEntries(
          Object.entries(project.networks).map(([k, { subnet, ...n }]) => [
            k,
            { ...strip(n), ...(subnet ? { ipam: { config: [{ subnet }] } } : {}) },
          ]),
        ),
      }
      : {}),
    ...(Object.keys(project.volumes).length
      ? { volumes: Object.fromEntries(Object.entries(project.volumes).map(([k, v]) => [k, strip(v)])) }
      : {}),
  };
  return stringify(doc, { aliasDuplicateObjects: false });
}

const ms = (n: number | undefined) => n === undefined ? undefined : `${n}ms`;
const nonEmpty = <T extends object>(v: T) => Object.keys(v).length ? v : undefined;

function renderService(s: ServiceConfig): Record<string, unknown> {
  const h = s.healthcheck;
  return {
    image: s.image,
    command: s.command,
    entrypoint: s.entrypoint,
    environment: nonEmpty(s.environment),
    ports: s.ports.length
      ? s.ports.map((p) => ({
        target: p.target,
        published: p.published === undefined ? undefined : String(p.published),
        host_ip: p.hostIP,
        protocol: p.protocol,
      }))
      : undefined,
    volumes: s.volumes.length
      ? s.volumes.map((v) => ({
        type: v.type,
        source: v.source,
        target: v.target,
        read_only: v.readOnly || undefined,
      }))
      : undefined,
    network_mode: s.networkMode,
    networks: s.networkMode ? undefined : Object.fromEntries(
      Object.entries(s.networks).map(([k, n]) => [k, n.aliases.length ? { aliases: n.aliases } : null]),
    ),
    depends_on: nonEmpty(s.dependsOn),
    restart: s.restart
      ? s.restart.name === "on-failure" && s.restart.maxRetries !== undefined
        ? `on-failure:${s.restart.maxRetries}`
        : s.restart.name
      : undefined,
    healthcheck: h
      ? {
        test: h.test,
        interval: ms(h.intervalMs),
        timeout: ms(h.timeoutMs),
        retries: h.retries,
        start_period: ms(h.startPeriodMs),
      }
      : undefined,
    labels: nonEmpty(s.labels),
    working_dir: s.workingDir,
    user: s.user,
    hostname: s.hostname,
    container_name: s.containerName,
    scale: s.scale,
    pull_policy: s.pullPolicy === "missing" ? undefined : s.pullPolicy,
    tty: s.tty || undefined,
    stdin_open: s.stdinOpen || undefined,
    read_only: s.readOnly || undefined,
    dns: s.dns.length ? s.dns : undefined,
    mem_limit: s.memoryBytes,
    cpus: s.cpus,
    pids_limit: s.pidsLimit,
  };
}
