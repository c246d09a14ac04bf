/** Memory and process-tree figures read from /proc, the same way for every daemon under test. */

export interface Memory {
  /** Resident set in KiB; summed over a tree it counts shared pages once per process. */
  readonly rssKiB: number;
  /** Proportional set in KiB; sums over a tree without double counting shared pages. */
  readonly pssKiB: number;
}

/** Rss and Pss (KiB) from the text of /proc/<pid>/smaps_rollup. */
export function parseSmapsRollup(text: string): Memory {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    if (!m) throw new Error(`Cannot read ${name} from smaps_rollup: field missing`);
    return Number(m[1]);
  };
  return { rssKiB: field("Rss"), pssKiB: field("Pss") };
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    // A process (or thread) may exit between listing and reading: that is not an error here.
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) return undefined;
    throw err;
  }
}

/** Direct children of pid, over all its threads (a child's parent may be any thread). */
export async function childrenOf(pid: number): Promise<number[]> {
  const out = new Set<number>();
  let tasks: Deno.DirEntry[] = [];
  try {
    tasks = await Array.fromAsync(Deno.readDir(`/proc/${pid}/task`));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  for (const t of tasks) {
    const text = await readOrUndefined(`/proc/${pid}/task/${t.name}/children`);
    for (const word of (text ?? "").split(/\s+/)) {
      if (word !== "") out.add(Number(word));
    }
  }
  return [...out];
}

/** pid and all its descendants, parents first. */
export async function processTree(pid: number): Promise<number[]> {
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (tree.includes(p)) continue;
    tree.push(p);
    queue.push(...await childrenOf(p));
  }
  return tree;
}

/** Rss and Pss of pid's whole process tree (daemon plus any helpers or shims it started). */
export async function treeMemory(pid: number): Promise<Memory & { readonly pids: number[] }> {
  const pids = await processTree(pid);
  let rssKiB = 0;
  let pssKiB = 0;
  const counted: number[] = [];
  for (const p of pids) {
    const text = await readOrUndefined(`/proc/${p}/smaps_rollup`);
    if (text === undefined) continue;
    const m = parseSmapsRollup(text);
    rssKiB += m.rssKiB;
    pssKiB += m.pssKiB;
    counted.push(p);
  }
  if (counted.length === 0) throw new Error(`Cannot measure memory of process ${pid}: it has exited`);
  return { rssKiB, pssKiB, pids: counted };
}

export function isAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** One mapping's figures from /proc/<pid>/smaps, in KiB; name is the path, `[heap]`, or "" (anonymous). */
export interface Mapping {
  readonly name: string;
  readonly sizeKiB: number;
  readonly rssKiB: number;
}

/** The mappings of the text of /proc/<pid>/smaps, in address order. */
export function parseSmaps(text: string): Mapping[] {
  const out: { name: string; sizeKiB: number; rssKiB: number }[] = [];
  for (const line of text.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      out.push({ name: head[1]!, sizeKiB: 0, rssKiB: 0 });
      continue;
    }
    const field = /^(Size|Rss):\s+(\d+) kB$/.exec(line);
    const last = out.at(-1);
    if (!field || !last) continue;
    if (field[1] === "Size") last.sizeKiB = Number(field[2]);
    else last.rssKiB = Number(field[2]);
  }
  return out;
}
