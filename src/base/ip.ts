/**
 * Which IP version a string is, as Node's net.isIP() answers it (4, 6, or 0 for neither), without
 * node:net: importing it loads Deno's Node compatibility layer, ~17 ms of every process that reads a
 * CNI result (the shim, the CLI's network verbs, the daemon's CRI).
 */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (isIPv4(s)) return 4;
  if (isIPv6(s)) return 6;
  return 0;
}

/** Dotted-quad IPv4: four decimal parts of 0-255, none with a leading zero. */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/**
 * IPv6 text: eight groups of 1-4 hex digits, one run of them shortened to `::` (standing for at least
 * one group), the last two groups optionally written as an IPv4 address, and an optional `%zone`.
 */
export function isIPv6(s: string): boolean {
  const zone = s.indexOf("%");
  if (zone >= 0) {
    if (!/^[0-9a-zA-Z.:-]+$/.test(s.slice(zone + 1))) return false;
    s = s.slice(0, zone);
  }
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groups = halves.map((h) => h === "" ? [] : h.split(":"));
  const all = groups.flat();
  let count = all.length;
  // The address's last group (not one before its `::`) may be an IPv4 form: it stands for two groups.
  const last = groups.at(-1)!.at(-1);
  if (last !== undefined && last.includes(".")) {
    if (!isIPv4(last)) return false;
    all.pop();
    count++;
  }
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}
