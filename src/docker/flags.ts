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
  const flag = `"${spec}"`;
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
    throw invalidArgument(`Invalid port ${flag}: use [ip:][hostPort:]containerPort[/tcp|udp]`);
  }
  if (!v6 && !/^(\d{1,3}\.){3}\d{1,3}$/.test(hostIP)) {
    throw invalidArgument(`Invalid host address "${hostIP}" in ${flag}`);
  }
  const containerPorts = portRange(flag, parts[parts.length - 1]!);
  if (containerPorts.includes(0)) {
    throw invalidArgument(`Invalid port ${flag}: the container port cannot be 0`);
  }
  const hostText = parts.length === 2 ? parts[0]! : "";
  const hostPorts = hostText === "" ? containerPorts.map(() => 0) : portRange(flag, hostText);
  if (hostPorts.length !== containerPorts.length) {
    throw invalidArgument(`Invalid port ${flag}: the host and container port ranges differ in length`);
  }
  return containerPorts.map((containerPort, i) => ({
    hostIP,
    hostPort: hostPorts[i]!,
    containerPort,
    protocol,
  }));
}

/** The modes docker accepts after `-v SRC:DST:` (compose's short syntax too); only `ro` changes the mount. */
const VOLUME_MODES = [
  "ro",
  "rw",
  "z",
  "Z",
  "nocopy",
  "cached",
  "delegated",
  "consistent",
  "shared",
  "rshared",
  "slave",
  "rslave",
  "private",
  "rprivate",
];

/**
 * `-v SRC:DST[:MODE[,MODE…]]` (a path SRC — `/`, `.` or `~` first — is a bind, a name a named volume) or
 * `-v DST` (an anonymous volume). Relative and `~` bind sources are taken from `cwd` and HOME, as docker
 * compose does (docker run rejects relative ones).
 */
export function parseVolume(spec: string, cwd = Deno.cwd()): VolumeMount {
  const parts = spec.split(":");
  if (parts.length > 3 || parts.some((p) => p === "")) {
    throw invalidArgument(`Invalid volume "${spec}": use SRC:DST[:ro] or DST`);
  }
  let readOnly = false;
  if (parts.length === 3) {
    for (const mode of parts.pop()!.split(",")) {
      if (!VOLUME_MODES.includes(mode)) throw invalidArgument(`Unknown volume mode "${mode}" in "${spec}"`);
      if (mode === "ro") readOnly = true;
    }
  }
  if (parts.length === 1) return { kind: "anonymous", target: absolute(parts[0]!, spec), readOnly };
  const [source, target] = parts as [string, string];
  if (/^[./~]/.test(source)) {
    return { kind: "bind", source: resolveHostPath(source, cwd), target: absolute(target, spec), readOnly };
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(source)) {
    throw invalidArgument(`Invalid volume name "${source}" in "${spec}"`);
  }
  return { kind: "volume", name: source, target: absolute(target, spec), readOnly };
}

function absolute(target: string, spec: string): string {
  if (!target.startsWith("/")) {
    throw invalidArgument(`The mount target "${target}" in "${spec}" must be an absolute path`);
  }
  return target;
}

/** A host path from a user: `~` is HOME, a relative one is taken from `base`; `.` and `..` resolved. */
export function resolveHostPath(path: string, base: string): string {
  let p = path;
  if (p === "~" || p.startsWith("~/")) p = (Deno.env.get("HOME") ?? "/root") + p.slice(1);
  if (!p.startsWith("/")) p = `${base}/${p}`;
  const out: string[] = [];
  for (const part of p.split("/")) {
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
