export {
  type Collector,
  type ContainerRefs,
  GarbageCollector,
  type GcDeps,
  type GcRef,
  type GcResult,
} from "./collector.ts";
export {
  defaultGcConfig,
  formatGoDuration,
  type GcConfig,
  gcConfigKeys,
  parseGcConfig,
  parseGoDuration,
} from "./config.ts";
export {
  type Clock,
  GcScheduler,
  type GcSchedulerOptions,
  type GcTotals,
  type MutationSource,
} from "./scheduler.ts";
