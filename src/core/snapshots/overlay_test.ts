import { OverlaySnapshotter } from "./overlay.ts";
import { snapshotterSuite } from "./testsuite.ts";

snapshotterSuite("overlayfs", (root, db) => new OverlaySnapshotter(root, db));
