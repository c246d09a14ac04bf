import type { MetadataDB } from "../../core/metadata/db.ts";
import type { TaskManager } from "../../core/runtime/mod.ts";
import type { GcScheduler } from "../../core/gc/mod.ts";
import type { PullStats } from "../../core/transfer/mod.ts";
import type { CallStart } from "../server.ts";
import type { Histogram } from "./histogram.ts";

/** What a scrape reads besides the calls; each part is absent when its plugin is disabled. */
export interface ScrapeSources {
  readonly db: MetadataDB;
  readonly tasks?: TaskManager;
  readonly gc?: GcScheduler;
  readonly pulls?: PullStats;
  /** Whether the CRI plugin runs (its pod families are served only then). */
  readonly cri: boolean;
}

/** go-grpc-prometheus' counters of one method (grpc_type, grpc_service, grpc_method). */
export interface GrpcSeries {
  readonly call: CallStart;
  started: number;
  received: number;
  sent: number;
  /** Calls handled, by gRPC code number. */
  readonly handled: number[];
  readonly seconds?: Histogram;
}

/** The daemon's own counters, kept as calls happen. */
export interface Counted {
  readonly grpc: ReadonlyMap<string, GrpcSeries>;
  /** The event loop's lag, sampled by a timer. */
  readonly lag: Histogram;
}
