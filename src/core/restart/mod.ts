export {
  decide,
  type DecideOptions,
  type Decision,
  formatPolicy,
  logIO,
  type ObservedTask,
  parsePolicy,
  type PolicyName,
  RestartLabels,
  type RestartPolicy,
} from "./policy.ts";
export {
  type RestartContainer,
  type RestartHost,
  RestartMonitor,
  type RestartMonitorOptions,
} from "./monitor.ts";
export {
  AUTO_REMOVE_LABEL,
  type AutoRemoveHost,
  AutoRemover,
  type AutoRemoverOptions,
} from "./auto_remove.ts";
