/**
 * Joins path segments and cleans the result as Go's filepath.Join does: one slash between segments, no
 * `.` segments, `..` taking back the segment before it (never above the root), no trailing slash. Here
 * rather than node:path's join, which loads Deno's node compatibility layer at the daemon's start.
 */
export function joinPath(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  if (joined === "") return "";
  const abs = joined.startsWith("/");
  const out: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
    } else out.push(seg);
  }
  const body = out.join("/");
  return abs ? `/${body}` : body || ".";
}
