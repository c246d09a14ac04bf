/**
 * Loading a compose project as docker compose does: which files (`-f`, else compose.yaml and its
 * kin in the project directory, plus the matching `.override` file), which variables (the process
 * environment over the project's `.env`), which name (`-p`, COMPOSE_PROJECT_NAME, `name:`, else the
 * directory's), then interpolation per file, merging in order, and normalization.
 */
import { interpolate, type Lookup, parseEnvFile } from "./environment.ts";
import { startOrder } from "./convert.ts";
import type { ComposeProject } from "./model.ts";
import { normalizeProject, resolvePath } from "./normalize.ts";
import { ioCause, keyValues } from "./values.ts";
import { ComposeError, type MapEntry, parseYamlTree, type YNode } from "./yaml_tree.ts";

export interface LoadOptions {
  /** `-f`, in order; relative to `cwd`. Default: the first of DEFAULT_FILES in the project directory. */
  readonly files?: readonly string[];
  /** `-p`. */
  readonly projectName?: string;
  /** `--project-directory`; default: the first file's folder, or `cwd`. */
  readonly projectDirectory?: string;
  /** `--env-file`; default: `<project directory>/.env` when it exists. */
  readonly envFile?: string;
  /** The process environment; default Deno.env. */
  readonly env?: Readonly<Record<string, string>>;
  /** Default Deno.cwd(). */
  readonly cwd?: string;
  /** Default: console.warn. */
  readonly warn?: (message: string) => void;
}

/** Looked for in this order, as docker compose does. */
export const DEFAULT_FILES = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];

export function loadProject(options: LoadOptions = {}): ComposeProject {
  const cwd = options.cwd ?? Deno.cwd();
  const processEnv = options.env ?? Deno.env.toObject();
  const warn = options.warn ?? ((m: string) => console.warn(`WARN: ${m}`));
  const composeFileEnv = processEnv.COMPOSE_FILE;
  const explicit = options.files?.length
    ? options.files
    : composeFileEnv
    ? composeFileEnv.split(processEnv.COMPOSE_PATH_SEPARATOR ?? ":").filter((f) => f !== "")
    : undefined;
  const explicitFiles = explicit?.map((f) => resolvePath(f, cwd));
  const workingDir = options.projectDirectory
    ? resolvePath(options.projectDirectory, cwd)
    : explicitFiles
    ? dirname(explicitFiles[0]!)
    : cwd;
  const files = explicitFiles ?? findDefaultFiles(workingDir, warn);

  const dotEnv = readDotEnv(options.envFile ? resolvePath(options.envFile, cwd) : `${workingDir}/.env`, {
    required: options.envFile !== undefined,
    processEnv,
  });
  // The process environment wins over .env, as in docker compose.
  const lookup: Lookup = (name) => processEnv[name] ?? dotEnv.get(name);

  const unset = new Set<string>();
  const onUnset = (name: string) => {
    if (unset.has(name)) return;
    unset.add(name);
    warn(`The "${name}" variable is not set. Defaulting to a blank string.`);
  };
  let merged: YNode | undefined;
  for (const file of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      throw new ComposeError(`Cannot read compose file "${file}": ${ioCause(err)}`);
    }
    const tree = interpolateTree(parseYamlTree(text, file), lookup, onUnset);
    merged = merged ? mergeTrees(merged, tree, []) : tree;
  }

  const projectName = chooseProjectName(merged!, workingDir, options.projectName, lookup);
  const project = normalizeProject(merged!, {
    projectName,
    workingDir,
    configFiles: files,
    lookup,
    readTextFile: (path) => Deno.readTextFileSync(path),
    warn,
  });
  startOrder(project); // a dependency cycle fails the load, not the first `up`
  return project;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function findDefaultFiles(dir: string, warn: (m: string) => void): string[] {
  const found = DEFAULT_FILES.filter((f) => exists(`${dir}/${f}`));
  if (found.length === 0) {
    throw new ComposeError(
      `No compose file found in ${dir}: looked for ${DEFAULT_FILES.join(", ")}; name one with -f`,
    );
  }
  const main = found[0]!;
  if (found.length > 1) warn(`Found multiple config files (${found.join(", ")}): using ${main}`);
  const dot = main.lastIndexOf(".");
  const override = `${main.slice(0, dot)}.override${main.slice(dot)}`;
  return exists(`${dir}/${override}`) ? [`${dir}/${main}`, `${dir}/${override}`] : [`${dir}/${main}`];
}

function readDotEnv(
  path: string,
  options: { required: boolean; processEnv: Readonly<Record<string, string>> },
): Map<string, string> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (!options.required && err instanceof Deno.errors.NotFound) return new Map();
    throw new ComposeError(`Cannot read env file "${path}": ${ioCause(err)}`);
  }
  try {
    return parseEnvFile(text, (n) => options.processEnv[n]);
  } catch (err) {
    throw new ComposeError(`${path}: ${(err as Error).message}`);
  }
}

const PROJECT_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;

/** `-p`, COMPOSE_PROJECT_NAME, `name:`, else the project directory's name made valid. */
function chooseProjectName(
  tree: YNode,
  workingDir: string,
  flag: string | undefined,
  lookup: Lookup,
): string {
  const nameNode = tree.kind === "map" ? tree.entries.get("name")?.value : undefined;
  const fromFile = nameNode?.kind === "scalar" && nameNode.value !== null
    ? String(nameNode.value)
    : undefined;
  const explicit = flag || lookup("COMPOSE_PROJECT_NAME") || fromFile;
  if (explicit) {
    if (!PROJECT_NAME_RE.test(explicit)) {
      throw new ComposeError(
        `Invalid project name "${explicit}": use lowercase letters, digits, dashes and underscores, starting with a letter or digit`,
        flag || lookup("COMPOSE_PROJECT_NAME") ? undefined : nameNode?.pos,
      );
    }
    return explicit;
  }
  const base = workingDir.split("/").filter((p) => p !== "").pop() ?? "";
  const normalized = base.toLowerCase().replace(/[^a-z0-9_-]/g, "").replace(/^[_-]+/, "");
  if (!normalized) {
    throw new ComposeError(
      `Cannot derive a project name from the directory "${workingDir}": give one with -p`,
    );
  }
  return normalized;
}

/** Interpolates every string value (never keys), each error naming the value's place. */
export function interpolateTree(node: YNode, lookup: Lookup, onUnset?: (name: string) => void): YNode {
  switch (node.kind) {
    case "scalar": {
      if (typeof node.value !== "string" || !node.value.includes("$")) return node;
      try {
        return { ...node, value: interpolate(node.value, lookup, onUnset ? { onUnset } : {}) };
      } catch (err) {
        throw new ComposeError((err as Error).message, node.pos);
      }
    }
    case "seq":
      return { ...node, items: node.items.map((i) => interpolateTree(i, lookup, onUnset)) };
    case "map": {
      const entries = new Map<string, MapEntry>();
      for (const [k, e] of node.entries) {
        // Extensions are templates for anchors: a "$" there is no error until it is used.
        entries.set(k, k.startsWith("x-") ? e : { ...e, value: interpolateTree(e.value, lookup, onUnset) });
      }
      return { ...node, entries };
    }
  }
}

/** Keys whose list and map forms are the same thing, merged by name. */
const KEYED_LISTS = ["environment", "labels", "extra_hosts"];
/** Keys (of a service) whose lists add up across files. */
const APPENDED_LISTS = ["ports", "expose", "dns", "env_file", "volumes"];

/**
 * An override file over a base, as docker compose merges them: maps key by key, environment and
 * labels by name, ports/volumes/dns/env_file appended (a later volume of the same target wins in
 * normalization), and anything else replaced by the later file.
 */
export function mergeTrees(base: YNode, over: YNode, path: readonly string[]): YNode {
  const key = path[path.length - 1] ?? "";
  const inService = path.length === 3 && path[0] === "services";
  if (inService && (KEYED_LISTS.includes(key) || key === "networks" || key === "depends_on")) {
    return mergeTrees(asKeyedMap(base, key), asKeyedMap(over, key), [...path, "*"]);
  }
  if (inService && APPENDED_LISTS.includes(key) && base.kind === "seq" && over.kind === "seq") {
    return { ...over, items: [...base.items, ...over.items] };
  }
  if (base.kind !== "map" || over.kind !== "map") return over;
  const entries = new Map(base.entries);
  for (const [k, e] of over.entries) {
    const prior = entries.get(k);
    entries.set(k, prior ? { keyPos: e.keyPos, value: mergeTrees(prior.value, e.value, [...path, k]) } : e);
  }
  return { ...over, entries };
}

/** A list form (`- K=V`, `- name`) as the equivalent map, so two files' forms can be merged. */
function asKeyedMap(node: YNode, key: string): YNode {
  if (node.kind !== "seq") return node;
  const entries = new Map<string, MapEntry>();
  if (KEYED_LISTS.includes(key)) {
    keyValues(node, key).forEach(([k, v], i) => {
      const pos = node.items[i]!.pos;
      entries.set(k, { keyPos: pos, value: { kind: "scalar", pos, value: v ?? null } });
    });
  } else {
    for (const item of node.items) {
      const name = item.kind === "scalar" ? String(item.value) : "";
      entries.set(name, { keyPos: item.pos, value: { kind: "scalar", pos: item.pos, value: null } });
    }
  }
  return { kind: "map", pos: node.pos, entries };
}
