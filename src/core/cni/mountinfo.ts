/** Reading /proc/self/mountinfo: which paths are mount points in this process's mount namespace. */

/** mountinfo escapes space, tab, newline and backslash in paths as three octal digits. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount points listed in `text` (mountinfo's fifth field), in order; a path mounted twice appears twice. */
export function parseMountPoints(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    if (fields.length > 4) out.push(unescape(fields[4]!));
  }
  return out;
}

/** The current mount points. Synchronous: the caller decides and mounts with no await in between. */
export function mountPoints(): string[] {
  return parseMountPoints(Deno.readTextFileSync("/proc/self/mountinfo"));
}

/** Whether the canonical `path` is a mount point. */
export function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

/** The mount points strictly below the canonical folder `dir`. */
export function mountsBelow(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return mountPoints().filter((p) => p.startsWith(prefix));
}
