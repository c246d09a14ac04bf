/** Finding a test's processes by their command line, from /proc. */

/** Processes whose argv `match` accepts, by pid, with their argv; a process that exits meanwhile is skipped. */
export function processArgv(match: (argv: string[]) => boolean): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (match(argv)) out.set(Number(e.name), argv);
    } catch { /* exited */ }
  }
  return out;
}

/** Pids of processes whose command line (argv joined by spaces) contains every one of `parts`. */
export function processesWith(...parts: string[]): number[] {
  return [
    ...processArgv((argv) => {
      const line = argv.join(" ");
      return parts.every((p) => line.includes(p));
    }).keys(),
  ];
}

/** The Berth shims serving the daemon at `address` (not `berth shim start` runs), by pid, with their argv. */
export function shimsOf(address: string): Map<number, string[]> {
  return processArgv((argv) => argv.includes("shim") && argv.includes(address) && !argv.includes("start"));
}

/**
 * The paths of the unix sockets `pid` listens on: /proc/net/unix rows (flag __SO_ACCEPTCON) whose inode is
 * one of the process's socket descriptors. Empty when it has exited.
 */
export function listeningUnixSockets(pid: number): string[] {
  const inodes = new Set<string>();
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`));
        if (m) inodes.add(m[1]!);
      } catch { /* closed meanwhile */ }
    }
  } catch {
    return [];
  }
  // Num RefCount Protocol Flags Type St Inode Path
  return Deno.readTextFileSync("/proc/net/unix").split("\n").slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === "00010000" && inodes.has(f[6]!) && f[7])
    .map((f) => f[7]!);
}
