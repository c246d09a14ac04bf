/**
 * Berth's house rules for imports, checked: no two files import each other (directly or round a
 * circle), and every import points to the same floor or a lower one. Reads the static and dynamic
 * imports of src/, ffi/ and main.ts (tests and src/gen left out) as text.
 *
 *   deno run -A scripts/import_graph.ts        # prints every circle and upward arrow; exit 1 if any
 *
 * tests/import_graph_test.ts runs the same check in CI.
 */

/** What each area may import besides itself. An area is a folder under src/ (or ffi/, main.ts). */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  "main.ts": ["daemon", "shim", "cli", "base", "version"],
  "version": [],
  "gen": [],
  "ffi": [],
  "base": ["ffi", "gen"],
  // OCI runtime-spec generation and image-spec helpers: pure functions the daemon and clients share.
  "oci": ["base"],
  "h2": ["base"],
  "ttrpc": ["base", "gen"],
  "client": ["h2", "oci", "base", "gen", "version"],
  "core": ["oci", "ttrpc", "base", "ffi", "gen"],
  "shim": ["core", "oci", "ttrpc", "base", "ffi", "gen", "version"],
  "plugins": ["core", "oci", "ttrpc", "base", "ffi", "gen"],
  "services": ["plugins", "core", "oci", "base", "gen", "version"],
  // The daemon is also a client: of proxy plugins' gRPC services (GrpcTransport), wired into plugins.
  "daemon": ["services", "plugins", "core", "oci", "h2", "client", "ttrpc", "base", "ffi", "gen", "version"],
  // Docker-style workflows (nerdctl's model): a client of the daemon that also runs on the host, as the
  // OCI hook that wires a container's networks and as the reader of its logs and volumes. It may use the
  // CNI runner, the mount helpers and the json-file log format of core, nothing else of the daemon.
  "docker": [
    "client",
    "oci",
    "base",
    "gen",
    "ffi",
    "version",
    "core/cni",
    "core/mount",
    "core/logs",
    "core/dockernet",
  ],
  "cli": ["docker", "client", "oci", "base", "gen", "version"],
};

/**
 * Where the CLI may touch the host directly (terminals, mounts, local files): one named folder, so the
 * exception is visible. Its files may import core's mount helpers and ffi, nothing else of the daemon.
 */
export const CLI_HOST = "cli/host";
const CLI_HOST_ALLOWED = ["client", "oci", "base", "gen", "ffi", "core/mount"];

export interface Edge {
  readonly from: string;
  readonly to: string;
}

export interface Report {
  readonly files: number;
  readonly circles: string[][];
  readonly upward: Edge[];
}

/** The area of a repository-relative path: `src/core/x/y.ts` → `core`, `ffi/fd.ts` → `ffi`. */
export function areaOf(path: string): string {
  if (path === "main.ts") return "main.ts";
  if (path.startsWith("ffi/")) return "ffi";
  const m = /^src\/([^/]+?)(?:\.ts)?(?:\/|$)/.exec(path);
  return m ? m[1]! : path;
}

/** Whether an import from `from` to `to` respects the floors. */
export function allowed(from: string, to: string): boolean {
  const a = areaOf(from);
  const b = areaOf(to);
  if (a === b) return true;
  if (from.startsWith(`src/${CLI_HOST}/`)) {
    return CLI_HOST_ALLOWED.some((p) => to.startsWith(`src/${p}/`) || areaOf(to) === p);
  }
  if (a === "cli" && to.startsWith(`src/${CLI_HOST}/`)) return true;
  // An entry with a slash allows one folder of an area ("core/cni"), not the whole area.
  return (ALLOWED[a] ?? []).some((p) => p.includes("/") ? to.startsWith(`src/${p}/`) : p === b);
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function sourceFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${root}/${rel}`)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (p === "src/gen" || p.endsWith("/testdata")) continue;
        walk(p);
      } else if (
        e.name.endsWith(".ts") && !/_test\.ts$|(^|\/)(testing|test_util|testsuite)\.ts$/.test(e.name)
      ) {
        out.push(p);
      }
    }
  };
  walk("src");
  walk("ffi");
  out.push("main.ts");
  return out.sort();
}

function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith(".")) return undefined; // npm:, node:, bare specifiers
  const parts = from.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "..") parts.pop();
    else if (seg !== ".") parts.push(seg);
  }
  return parts.join("/");
}

/** The import graph of the tree at `root`: file → the files it imports. */
export function importGraph(root: string): Map<string, Set<string>> {
  const files = sourceFiles(root);
  const graph = new Map<string, Set<string>>();
  for (const f of files) {
    const text = Deno.readTextFileSync(`${root}/${f}`);
    const deps = new Set<string>();
    for (const m of text.matchAll(IMPORT)) {
      const target = resolve(f, m[1] ?? m[2]!);
      if (target && !target.startsWith("src/gen/") && target !== f) deps.add(target);
    }
    graph.set(f, deps);
  }
  return graph;
}

/** Strongly connected components with more than one file (Tarjan). */
export function circles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

export function check(root: string): Report {
  const graph = importGraph(root);
  const upward: Edge[] = [];
  for (const [from, deps] of graph) {
    for (const to of deps) if (!allowed(from, to)) upward.push({ from, to });
  }
  return { files: graph.size, circles: circles(graph), upward };
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const report = check(root);
  for (const c of report.circles) console.log(`circle: ${c.join(" ⇄ ")}`);
  for (const e of report.upward) {
    console.log(`upward: ${e.from} → ${e.to} (${areaOf(e.from)} may not import ${areaOf(e.to)})`);
  }
  console.log(
    `${report.files} files, ${report.circles.length} circles, ${report.upward.length} upward imports`,
  );
  if (report.circles.length > 0 || report.upward.length > 0) Deno.exit(1);
}
