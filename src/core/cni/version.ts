/**
 * CNI spec versions. Berth runs configurations of 0.3.0 to 1.0.0: the versions whose results carry
 * `interfaces` and `ips` (0.1/0.2 had `ip4`/`ip6`), and the newest that Debian's plugins speak. 1.1.0
 * adds STATUS and GC, which Berth does not call yet, so it is refused rather than half honoured.
 */

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] as const;

/** The version a plugin gets in VERSION requests and the one conflists written by Berth use. */
export const CURRENT_VERSION = "1.0.0";

function parts(version: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Whether `version` is a well-formed "major.minor.patch". */
export function isVersion(version: string): boolean {
  return parts(version) !== undefined;
}

/** Negative, zero or positive as `a` is older than, equal to or newer than `b` (both well formed). */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a) ?? [0, 0, 0];
  const pb = parts(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** ADD results before 0.4.0 were not handed to DEL, and CHECK did not exist (spec 0.4.0 added both). */
export function hasCheckAndCachedDel(version: string): boolean {
  return compareVersions(version, "0.4.0") >= 0;
}

/**
 * The version a list runs at: `cniVersion`, or with 1.1's `cniVersions` the newest listed that Berth
 * supports (a config may list versions newer than its runtime knows, and libcni skips those too).
 */
export function pickVersion(
  cniVersion: string | undefined,
  cniVersions: readonly string[] | undefined,
): string {
  const candidates = [...(cniVersions ?? []), ...(cniVersion ? [cniVersion] : [])];
  const usable = candidates.filter(isSupportedVersion).sort(compareVersions);
  if (cniVersions && cniVersions.length > 0 && usable.length > 0) return usable[usable.length - 1]!;
  return cniVersion ?? "";
}
