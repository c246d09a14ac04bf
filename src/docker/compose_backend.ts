/**
 * STUB — the lead replaces this file with the real ComposeBackend over the daemon (images, CNI
 * networks, volumes, containers made from RunOptions as `berth run -d` makes them). Until then every
 * `berth compose` verb that touches the runtime fails with "not implemented yet"; `config` works.
 */
import type { BerthClient } from "../client/mod.ts";
import type { ComposeBackend } from "./compose/backend.ts";
import type { DockerPaths } from "./paths.ts";

export function makeComposeBackend(_paths: DockerPaths, _client: BerthClient): ComposeBackend {
  throw new Error("berth compose: the runtime backend is not implemented yet");
}
