/**
 * Platform matching after containerd's platforms package: `os/arch[/variant]` specifiers, normalised
 * (x86_64 → amd64, aarch64 → arm64, arm64's default variant v8), and a matcher that also ranks.
 */

import { invalidArgument } from "../base/errors.ts";
import type { Platform } from "./image.ts";

export interface PlatformSpec {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  aarch64: "arm64",
  i386: "386",
  armhf: "arm",
  armel: "arm",
};

/** Fills the defaults containerd fills: arm64 → v8, arm → v7, amd64 → no variant (v1 means none). */
export function normalize(p: PlatformSpec): PlatformSpec {
  const os = p.os.toLowerCase();
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  if (architecture === "arm64" && (variant === undefined || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant === undefined) variant = "v7";
  if (architecture === "arm" && /^\d$/.test(variant ?? "")) variant = `v${variant}`;
  if (architecture === "amd64" && variant === "v1") variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** Parses `linux/arm64/v8`, `linux/amd64`, `arm64` (the host os is assumed) or `linux` (the host arch). */
export function parsePlatform(spec: string): PlatformSpec {
  const parts = spec.split("/");
  if (parts.length > 3 || parts.some((p) => p === "")) {
    throw invalidArgument(`Invalid platform ${JSON.stringify(spec)}: use os/arch[/variant]`);
  }
  const host = hostPlatform();
  if (parts.length === 1) {
    const one = parts[0]!.toLowerCase();
    if (one === "linux" || one === "windows" || one === "darwin" || one === "freebsd") {
      return normalize({ ...host, os: one });
    }
    return normalize({ os: host.os, architecture: one });
  }
  return normalize({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

export function formatPlatform(p: PlatformSpec): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

/** The platform of this host, as containerd's platforms.DefaultSpec(). */
export function hostPlatform(): PlatformSpec {
  return normalize({ os: Deno.build.os, architecture: Deno.build.arch });
}

/** Matches descriptors' platforms against wanted ones; lower rank is a better match. */
export interface PlatformMatcher {
  match(p: Platform | PlatformSpec | undefined): boolean;
  /** Index of the first wanted platform `p` matches, Infinity when none. */
  rank(p: Platform | PlatformSpec | undefined): number;
}

/**
 * A matcher for any of `wanted` (in order of preference), like platforms.Any(...) with containerd's
 * compatibility rules: amd64 also runs 386, arm64 also runs arm/v7 and below, and a lower arm variant
 * runs on a higher one. A descriptor without a platform matches (it is not platform-specific).
 */
export function platformMatcher(wanted: readonly PlatformSpec[]): PlatformMatcher {
  const specs = wanted.map(normalize);
  const rank = (p: Platform | PlatformSpec | undefined) => {
    if (p === undefined) return 0;
    const n = normalize(p);
    let best = Infinity;
    specs.forEach((w, i) => {
      compatible(w).forEach((c, j) => {
        if (c.os === n.os && c.architecture === n.architecture && (c.variant ?? "") === (n.variant ?? "")) {
          best = Math.min(best, i * 100 + j);
        }
      });
    });
    return best;
  };
  return { rank, match: (p) => rank(p) !== Infinity };
}

/** Matches every platform. */
export const allPlatforms: PlatformMatcher = { match: () => true, rank: () => 0 };

function compatible(w: PlatformSpec): PlatformSpec[] {
  const out: PlatformSpec[] = [w];
  if (w.architecture === "amd64") out.push({ os: w.os, architecture: "386" });
  if (w.architecture === "arm64") {
    for (const v of ["v7", "v6", "v5"]) out.push({ os: w.os, architecture: "arm", variant: v });
  }
  if (w.architecture === "arm" && w.variant) {
    const n = Number(w.variant.slice(1));
    for (let v = n - 1; v >= 5; v--) out.push({ os: w.os, architecture: "arm", variant: `v${v}` });
  }
  return out;
}
