import { NativeSnapshotter } from "./native.ts";
import { snapshotterSuite } from "./testsuite.ts";

snapshotterSuite("native", (root, db) => new NativeSnapshotter(root, db));
