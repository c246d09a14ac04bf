/** Berth's release version, shown by `berth --version` and the Version service. */
export const version = "0.1.0";
/** The source revision; release builds replace it via BERTH_REVISION at compile time. */
export const revision = "dev";
