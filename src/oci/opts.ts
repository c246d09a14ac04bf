/**
 * Spec options, composable like containerd's SpecOpts (oci/spec_opts*.go): each is a small function that
 * changes a spec, applied in order over `defaultUnixSpec`. The behaviour (including the odd corners, e.g.
 * TERM appended by withTTY, the process GID always first in additionalGids) follows containerd 1.6.
 */
import { invalidArgument, notFound } from "../base/errors.ts";
import {
  DEFAULT_PATH_ENV,
  defaultUnixSpec,
  type Linux,
  type Mount,
  type Process,
  type Resources,
  type Spec,
} from "./spec.ts";
import { type GroupEntry, parseGroup, parsePasswd, type PasswdEntry, type UserDb } from "./user.ts";

export interface SpecContext {
  readonly namespace: string;
  /** The container id. */
  readonly id: string;
  /**
   * Loads the container rootfs's /etc/passwd and /etc/group, on first use only (resolving a user may need a
   * temporary mount). Without it the rootfs is taken to have neither file.
   */
  readonly userDb?: () => Promise<UserDb>;
}

export type SpecOpt = (spec: Spec, ctx: SpecContext) => void | Promise<void>;

/** containerd's GenerateSpec: the default Linux spec with `opts` applied in order. */
export async function generateSpec(ctx: SpecContext, opts: readonly SpecOpt[] = []): Promise<Spec> {
  const spec = defaultUnixSpec(ctx.namespace, ctx.id);
  await applyOpts(spec, ctx, opts);
  return spec;
}

/** Applies `opts` in order; the user database is loaded at most once. */
export async function applyOpts(spec: Spec, ctx: SpecContext, opts: readonly SpecOpt[]): Promise<void> {
  let db: Promise<UserDb> | undefined;
  const load = ctx.userDb;
  const once: SpecContext = { ...ctx, userDb: () => db ??= load ? load() : Promise.resolve({}) };
  for (const opt of opts) await opt(spec, once);
}

/** Several options as one. */
export function compose(...opts: SpecOpt[]): SpecOpt {
  return async (s, ctx) => {
    for (const o of opts) await o(s, ctx);
  };
}

function proc(s: Spec): Process {
  return s.process ??= { user: { uid: 0, gid: 0 }, cwd: "" };
}

function linux(s: Spec): Linux {
  return s.linux ??= {};
}

function resources(s: Spec): Resources {
  return linux(s).resources ??= {};
}

/**
 * containerd's replaceOrAppendEnvValues: an override `K=V` replaces `K` or is appended; a bare `K` removes
 * `K` from the defaults.
 */
export function mergeEnv(defaults: readonly string[], overrides: readonly string[]): string[] {
  const out: (string | undefined)[] = [...defaults];
  const index = new Map<string, number>();
  defaults.forEach((e, i) => index.set(e.split("=", 1)[0]!, i));
  for (const v of overrides) {
    const eq = v.indexOf("=");
    const key = eq < 0 ? v : v.slice(0, eq);
    const at = index.get(key);
    if (eq < 0) {
      if (at !== undefined) out[at] = undefined;
      continue;
    }
    if (at !== undefined) out[at] = v;
    else out.push(v);
  }
  return out.filter((e): e is string => e !== undefined && e !== "");
}

export function withEnv(env: readonly string[]): SpecOpt {
  return (s) => {
    if (env.length === 0) return;
    const p = proc(s);
    p.env = mergeEnv(p.env ?? [], env);
  };
}

/** The lines of an env file (ctr --env-file: one K=V per line, taken verbatim). */
export function withEnvFile(text: string): SpecOpt {
  const vars = text.split("\n").map((l) => l.replace(/\r$/, ""));
  if (vars.at(-1) === "") vars.pop();
  return withEnv(vars);
}

export const withDefaultPathEnv: SpecOpt = (s) => {
  const p = proc(s);
  p.env = mergeEnv(p.env ?? [], [DEFAULT_PATH_ENV]);
};

export function withArgs(...args: string[]): SpecOpt {
  return (s) => {
    proc(s).args = [...args];
  };
}

export function withProcessCwd(cwd: string): SpecOpt {
  return (s) => {
    proc(s).cwd = cwd;
  };
}

/** A terminal for the process; containerd also appends TERM=xterm on Linux. */
export const withTTY: SpecOpt = (s) => {
  const p = proc(s);
  p.terminal = true;
  if (s.linux) p.env = [...(p.env ?? []), "TERM=xterm"];
};

export function withTTYSize(width: number, height: number): SpecOpt {
  return (s) => {
    proc(s).consoleSize = { height, width };
  };
}

export function withHostname(name: string): SpecOpt {
  return (s) => {
    s.hostname = name;
  };
}

export const withReadonlyRootfs: SpecOpt = (s) => {
  s.root = { ...(s.root ?? { path: "" }), readonly: true };
};

export function withMounts(mounts: readonly Mount[]): SpecOpt {
  return (s) => {
    s.mounts = [...(s.mounts ?? []), ...mounts.map((m) => ({ ...m }))];
  };
}

export function withoutMounts(...destinations: string[]): SpecOpt {
  const clean = (p: string) => p.replace(/\/+$/, "").replace(/\/+/g, "/") || "/";
  return (s) => {
    s.mounts = (s.mounts ?? []).filter((m) => !destinations.includes(clean(m.destination)));
  };
}

/** Leaves a namespace of the given type out, so the container shares the host's. */
export function withHostNamespace(type: string): SpecOpt {
  return (s) => {
    const l = linux(s);
    const i = (l.namespaces ?? []).findIndex((n) => n.type === type);
    if (i >= 0) l.namespaces!.splice(i, 1);
  };
}

export function withLinuxNamespace(ns: { type: string; path?: string }): SpecOpt {
  return (s) => {
    const list = linux(s).namespaces ??= [];
    const i = list.findIndex((n) => n.type === ns.type);
    if (i >= 0) list[i] = { ...ns };
    else list.push({ ...ns });
  };
}

const hostFile = (path: string): Mount => ({
  destination: path,
  type: "bind",
  source: path,
  options: ["rbind", "ro"],
});

/**
 * ctr --net-host: no network namespace, the host's /etc/hosts and /etc/resolv.conf bound read-only, and
 * HOSTNAME set to the host's name.
 */
export function withHostNetwork(hostname = Deno.hostname()): SpecOpt {
  return compose(
    withHostNamespace("network"),
    withMounts([hostFile("/etc/hosts"), hostFile("/etc/resolv.conf")]),
    withEnv([`HOSTNAME=${hostname}`]),
  );
}

export function withCgroup(path: string): SpecOpt {
  return (s) => {
    linux(s).cgroupsPath = path;
  };
}

/** `/<namespace>/<id>`: containerd's WithNamespacedCgroup (also the default spec's path). */
export const withNamespacedCgroup: SpecOpt = (s, ctx) => {
  linux(s).cgroupsPath = `/${ctx.namespace}/${ctx.id}`;
};

export function withMemoryLimit(bytes: number): SpecOpt {
  return (s) => {
    if (!s.linux) return;
    const r = resources(s);
    r.memory = { ...r.memory, limit: bytes };
  };
}

export function withCPUCFS(quota: number, period: number): SpecOpt {
  return (s) => {
    const r = resources(s);
    r.cpu = { ...r.cpu, quota, period };
  };
}

/** ctr --cpus: a CFS quota of `cpus` × the 100 ms period (Go's float-to-int truncation). */
export function withCPUs(cpus: number): SpecOpt {
  return withCPUCFS(Math.trunc(cpus * 100000), 100000);
}

export function withCPUShares(shares: number): SpecOpt {
  return (s) => {
    const r = resources(s);
    r.cpu = { ...r.cpu, shares };
  };
}

export function withPidsLimit(limit: number): SpecOpt {
  return (s) => {
    resources(s).pids = { limit };
  };
}

export function withAnnotations(annotations: Readonly<Record<string, string>>): SpecOpt {
  return (s) => {
    s.annotations = { ...s.annotations, ...annotations };
  };
}

/** The device nodes every container may use (containerd's WithDefaultUnixDevices cgroup rules). */
export const withDefaultUnixDevices: SpecOpt = (s) => {
  const r = resources(s);
  const dev = (major: number, minor?: number) => ({
    allow: true,
    type: "c",
    major,
    ...(minor !== undefined ? { minor } : {}),
    access: "rwm",
  });
  r.devices = [
    ...(r.devices ?? []),
    dev(1, 3), // null
    dev(1, 8), // random
    dev(1, 7), // full
    dev(5, 0), // tty
    dev(1, 5), // zero
    dev(1, 9), // urandom
    dev(5, 1), // console
    dev(136), // pts
    dev(5, 2), // ptmx
  ];
};

export function withAddedCapabilities(caps: readonly string[]): SpecOpt {
  return (s) => {
    const c = proc(s).capabilities ??= {};
    for (const cap of caps) {
      for (const k of ["bounding", "effective", "permitted"] as const) {
        const list = c[k] ??= [];
        if (!list.includes(cap)) list.push(cap);
      }
    }
  };
}

export function withDroppedCapabilities(caps: readonly string[]): SpecOpt {
  return (s) => {
    const c = proc(s).capabilities ??= {};
    for (const k of ["bounding", "effective", "permitted"] as const) {
      if (c[k]) c[k] = c[k].filter((x) => !caps.includes(x));
    }
  };
}

// ---- users -----------------------------------------------------------------------------------------

const isNumeric = (s: string) => /^[+-]?\d+$/.test(s);

/** The process GID is always one of its groups, and first when it was missing (ensureAdditionalGids). */
function ensureAdditionalGids(s: Spec): void {
  const u = proc(s).user;
  const gids = u.additionalGids ?? [];
  if (!gids.includes(u.gid)) u.additionalGids = [u.gid, ...gids];
}

async function users(ctx: SpecContext, who: string): Promise<PasswdEntry[]> {
  const db = await (ctx.userDb?.() ?? Promise.resolve<UserDb>({}));
  if (db.passwd === undefined) {
    throw notFound(`Cannot resolve user "${who}": the container's rootfs has no /etc/passwd`);
  }
  return parsePasswd(db.passwd);
}

async function groups(ctx: SpecContext, who: string): Promise<GroupEntry[]> {
  const db = await (ctx.userDb?.() ?? Promise.resolve<UserDb>({}));
  if (db.group === undefined) {
    throw notFound(`Cannot resolve group "${who}": the container's rootfs has no /etc/group`);
  }
  return parseGroup(db.group);
}

/** A numeric uid: its passwd entry's gid, or gid 0 when there is none (containerd's WithUserID). */
export function withUserID(uid: number): SpecOpt {
  return async (s, ctx) => {
    const p = proc(s);
    p.user.additionalGids = undefined;
    const db = await (ctx.userDb?.() ?? Promise.resolve<UserDb>({}));
    const entry = db.passwd === undefined ? undefined : parsePasswd(db.passwd).find((u) => u.uid === uid);
    p.user.uid = uid;
    p.user.gid = entry ? entry.gid : 0;
    ensureAdditionalGids(s);
  };
}

/** A user name, resolved in the rootfs's /etc/passwd (containerd's WithUsername). */
export function withUsername(name: string): SpecOpt {
  return async (s, ctx) => {
    const p = proc(s);
    p.user.additionalGids = undefined;
    const entry = (await users(ctx, name)).find((u) => u.name === name);
    if (!entry) throw notFound(`Cannot resolve user "${name}": no such user in the container's /etc/passwd`);
    p.user.uid = entry.uid;
    p.user.gid = entry.gid;
    ensureAdditionalGids(s);
  };
}

/**
 * An image's or ctr's USER: `uid`, `name`, `uid:gid`, `name:group`, `uid:group` or `name:gid`, names
 * resolved in the rootfs (containerd's WithUser). With a group part, a user name only gives the uid.
 */
export function withUser(user: string): SpecOpt {
  return async (s, ctx) => {
    const parts = user.split(":");
    if (parts.length === 1) {
      const opt = isNumeric(user) ? withUserID(Number(user) >>> 0) : withUsername(user);
      return await opt(s, ctx);
    }
    if (parts.length !== 2) throw invalidArgument(`Invalid USER value "${user}": use name|uid[:group|gid]`);
    const p = proc(s);
    p.user.additionalGids = undefined;
    const [u, g] = parts as [string, string];
    let uid = isNumeric(u) ? Number(u) >>> 0 : 0;
    let gid = isNumeric(g) ? Number(g) >>> 0 : 0;
    if (!isNumeric(u)) {
      const entry = (await users(ctx, u)).find((e) => e.name === u);
      if (!entry) throw notFound(`Cannot resolve user "${u}": no such user in the container's /etc/passwd`);
      uid = entry.uid;
    }
    if (!isNumeric(g)) {
      const entry = (await groups(ctx, g)).find((e) => e.name === g);
      if (!entry) throw notFound(`Cannot resolve group "${g}": no such group in the container's /etc/group`);
      gid = entry.gid;
    }
    p.user.uid = uid;
    p.user.gid = gid;
    ensureAdditionalGids(s);
  };
}

/**
 * Supplementary groups of `user` (a name, or a uid looked up in /etc/passwd) from the rootfs's /etc/group,
 * as containerd's WithAdditionalGIDs: the groups listing the user as a member, plus the process GID.
 */
export function withAdditionalGids(user: string): SpecOpt {
  return async (s, ctx) => {
    const p = proc(s);
    p.user.additionalGids = undefined;
    const db = await (ctx.userDb?.() ?? Promise.resolve<UserDb>({}));
    let name = user;
    if (isNumeric(user)) {
      const entry = db.passwd === undefined
        ? undefined
        : parsePasswd(db.passwd).find((u) => u.uid === Number(user));
      if (!entry) return ensureAdditionalGids(s);
      name = entry.name;
    }
    if (db.group !== undefined) {
      p.user.additionalGids = parseGroup(db.group)
        .filter((g) => g.name !== name && g.members.includes(name))
        .map((g) => g.gid);
    }
    ensureAdditionalGids(s);
  };
}

// ---- image config ----------------------------------------------------------------------------------

/** The `config` object of an OCI / Docker image config. */
export interface ImageConfig {
  readonly User?: string;
  readonly Env?: readonly string[] | null;
  readonly Entrypoint?: readonly string[] | null;
  readonly Cmd?: readonly string[] | null;
  readonly WorkingDir?: string;
  readonly Labels?: Readonly<Record<string, string>> | null;
  readonly StopSignal?: string;
  /** Paths the image declares as volumes (the values are empty objects). */
  readonly Volumes?: Readonly<Record<string, unknown>> | null;
}

/**
 * containerd's WithImageConfigArgs: the image's Env under the spec's (PATH by default), Entrypoint + Cmd
 * (or `args` instead of Cmd), WorkingDir (else "/"), and USER with its supplementary groups.
 */
export function withImageConfig(config: ImageConfig, args?: readonly string[]): SpecOpt {
  return async (s, ctx) => {
    const p = proc(s);
    if (!s.linux) throw invalidArgument("Cannot apply an image config: the spec has no linux section");
    const defaults = config.Env?.length ? config.Env : [DEFAULT_PATH_ENV];
    p.env = mergeEnv(defaults, p.env ?? []);
    const cmd = args?.length ? args : (config.Cmd ?? []);
    const all = [...(config.Entrypoint ?? []), ...cmd];
    p.args = all.length ? all : undefined;
    p.cwd = config.WorkingDir || "/";
    if (config.User) {
      await withUser(config.User)(s, ctx);
      return await withAdditionalGids(String(p.user.uid))(s, ctx);
    }
    await withAdditionalGids("root")(s, ctx);
  };
}

// ---- ctr's --mount ---------------------------------------------------------------------------------

/** Splits one CSV record (encoding/csv as ctr reads --mount): commas separate, double quotes quote. */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === "") quoted = true;
    else if (ch === ",") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw invalidArgument(`Invalid mount "${line}": unterminated quote`);
  out.push(cur);
  return out;
}

/** ctr's `--mount type=bind,src=/a,dst=/b,options=rbind:ro`. */
export function parseMountFlag(value: string): Mount {
  const m: Mount = { destination: "" };
  for (const field of csvFields(value)) {
    const eq = field.indexOf("=");
    if (eq < 0) throw invalidArgument(`Invalid mount "${value}": expected key=val`);
    const [key, val] = [field.slice(0, eq), field.slice(eq + 1)];
    switch (key) {
      case "type":
        m.type = val;
        break;
      case "source":
      case "src":
        m.source = val;
        break;
      case "destination":
      case "dst":
        m.destination = val;
        break;
      case "options":
        m.options = val.split(":");
        break;
      default:
        throw invalidArgument(`Invalid mount "${value}": option "${key}" is not supported`);
    }
  }
  return m;
}

/** A read-only or read-write bind mount of a host path (`rbind` like ctr's documented form). */
export function bindMount(source: string, destination: string, options: { readonly?: boolean } = {}): Mount {
  return { destination, type: "bind", source, options: ["rbind", options.readonly ? "ro" : "rw"] };
}
