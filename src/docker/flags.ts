/**
 * Docker's flag syntaxes, parsed into RunOptions pieces: `-p`, `-v`, `--restart`, `--memory`, `--cpus`,
 * `--env-file`. Pure functions: errors name the flag and the accepted form.
 */
import { invalidArgument } from "../base/errors.ts";
import type { PortMapping, RestartPolicy, VolumeMount } from "./run_options.ts";

const PORT = /^\d{1,5}$/;

function port(flag: string, text: string): number {
  const n = Number(text);
  if (!PORT.test(text) || n > 65535) throw invalidArgument(`Invalid port "${text}" in ${flag}: use 0-65535`);
  return n;
}

function portRange(flag: string, text: string): number[] {
  const [a, b] = text.split("-");
  const from = port(flag, a!);
  const to = b === undefined ? from : port(flag, b);
  if (to < from) throw invalidArgument(`Invalid port range "${text}" in ${flag}`);
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * `-p [ip:][hostPort:]containerPort[/proto]`, ranges allowed (`8000-8001:80-81`). A host port of 0 (or
 * none given) asks for a free port, chosen when the container is created.
 */
export function parsePublish(spec: string): PortMapping[] {
  const flag = `-p ${spec}`;
  let rest = spec;
  let protocol: "tcp" | "udp" = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const proto = rest.slice(slash + 1).toLowerCase();
    if (proto !== "tcp" && proto !== "udp") {
      throw invalidArgument(`Invalid protocol "${proto}" in ${flag}: use tcp or udp`);
    }
    protocol = proto;
    rest = rest.slice(0, slash);
  }
  let hostIP = "0.0.0.0";
  // An IPv6 host address comes in brackets: [::1]:8080:80.
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  let parts: string[];
  if (v6) {
    hostIP = v6[1]!;
    parts = v6[2]!.split(":");
  } else {
    parts = rest.split(":");
    if (parts.length === 3) hostIP = parts.shift()!;
  }
  if (parts.length < 1 || parts.length > 2 || parts.some((p) => p === "" && parts.length === 1)) {
    throw invalidArgument(`Invalid ${flag}: use [ip:][hostPort:]containerPort[/tcp|udp]`);
  }
  if (!v6 && !/^(\d{1,3}\.){3}\d{1,3}$/.test(hostIP)) {
    throw invalidArgument(`Invalid host address "${hostIP}" in ${flag}`);
  }
  const containerPorts = portRange(flag, parts[parts.length - 1]!);
  const hostText = parts.length === 2 ? parts[0]! : "";
  const hostPorts = hostText === "" ? containerPorts.map(() => 0) : portRange(flag, hostText);
  if (hostPorts.length !== containerPorts.length) {
    throw invalidArgument(`Invalid ${flag}: the host and container port ranges differ in length`);
  }
  return containerPorts.map((containerPort, i) => ({
    hostIP,
    hostPort: hostPorts[i]!,
    containerPort,
    protocol,
  }));
}

/**
 * `-v SRC:DST[:ro|rw]` (a path SRC is a bind, a name a named volume) or `-v DST` (anonymous volume).
 * Relative bind sources are taken from `cwd`, as docker compose does (docker run rejects them).
 */
export function parseVolume(spec: string, cwd = Deno.cwd()): VolumeMount {
  const parts = spec.split(":");
  let readOnly = false;
  if (
    parts.length === 3 ||
    (parts.length === 2 && /^(ro|rw)(,.*)?$/.test(parts[1]!) && !parts[1]!.startsWith("/"))
  ) {
    const mode = parts.pop()!;
    const opts = mode.split(",");
    for (const o of opts) {
      if (!["ro", "rw", "z", "Z", "rprivate", "private"].includes(o)) {
        throw invalidArgument(`Invalid mode "${o}" in -v ${spec}: use ro or rw`);
      }
    }
    readOnly = opts.includes("ro");
  }
  if (parts.length === 1) {
    const target = parts[0]!;
    if (!target.startsWith("/")) {
      throw invalidArgument(`Invalid -v ${spec}: the container path must be absolute`);
    }
    return { kind: "anonymous", target, readOnly };
  }
  if (parts.length !== 2) throw invalidArgument(`Invalid -v ${spec}: use SRC:DST[:ro]`);
  const [source, target] = parts as [string, string];
  if (!target.startsWith("/")) {
    throw invalidArgument(`Invalid -v ${spec}: the container path must be absolute`);
  }
  if (source.startsWith("/") || source.startsWith(".") || source.startsWith("~")) {
    const abs = source.startsWith("/")
      ? source
      : source.startsWith("~")
      ? `${Deno.env.get("HOME") ?? ""}${source.slice(1)}`
      : `${cwd}/${source}`;
    return { kind: "bind", source: normalize(abs), target, readOnly };
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(source)) {
    throw invalidArgument(`Invalid volume name "${source}" in -v ${spec}`);
  }
  return { kind: "volume", name: source, target, readOnly };
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/** `--restart no|always|unless-stopped|on-failure[:N]`. */
export function parseRestart(text: string): RestartPolicy {
  const [name, count] = text.split(":");
  switch (name) {
    case "no":
    case "always":
    case "unless-stopped":
      if (count !== undefined) break;
      return { name };
    case "on-failure": {
      if (count === undefined) return { name };
      const n = Number(count);
      if (!/^\d+$/.test(count) || n < 0) break;
      return { name, maxRetries: n };
    }
  }
  throw invalidArgument(`Invalid --restart "${text}": use no, always, unless-stopped or on-failure[:N]`);
}

/** The restart policy as containerd's restart monitor label reads it. */
export function restartLabel(policy: RestartPolicy): string {
  return policy.name === "on-failure" && policy.maxRetries !== undefined
    ? `on-failure:${policy.maxRetries}`
    : policy.name;
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** docker's RAMInBytes: `512m`, `1g`, `1024`, `1.5g` (binary units, optional trailing b). */
export function parseBytes(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw invalidArgument(`Invalid ${flag} "${text}": use a size like 512m or 1g`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

/** A positive decimal (`--cpus 0.5`). */
export function parsePositive(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0)) {
    throw invalidArgument(`Invalid ${flag} "${text}": use a positive number`);
  }
  return n;
}

/** An env file as docker reads it: K=V lines, `#` comments, a bare K takes the value from our env. */
export function parseEnvFile(text: string, env: (k: string) => string | undefined = Deno.env.get): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimStart();
    if (line === "" || line.startsWith("#")) continue;
    const i = line.indexOf("=");
    if (i < 0) {
      const v = env(line.trim());
      if (v !== undefined) out.push(`${line.trim()}=${v}`);
    } else out.push(line);
  }
  return out;
}
