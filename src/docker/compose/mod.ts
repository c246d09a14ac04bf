/**
 * `berth compose`: compose files loaded into a project (load.ts), the project turned into RunOptions
 * (convert.ts), and the verbs over a ComposeBackend (engine.ts, backend.ts).
 */
export { DEFAULT_FILES, type LoadOptions, loadProject } from "./load.ts";
export type * from "./model.ts";
export type * from "./backend.ts";
export { configHash, containerName, LABELS, startOrder, toRunOptions } from "./convert.ts";
export * from "./engine.ts";
export { ComposeError } from "./yaml_tree.ts";
