/**
 * A compose project after loading: files merged, variables interpolated, short forms expanded, names
 * checked. Everything the engine and `config` need, nothing that still refers to YAML.
 */
import type { HealthCheck, RestartPolicy } from "../run_options.ts";

export interface ComposeProject {
  /** Normalized: [a-z0-9_-]. */
  readonly name: string;
  /** Absolute; relative paths in the files are resolved against it. */
  readonly workingDir: string;
  /** Absolute paths, in load order. */
  readonly configFiles: readonly string[];
  /** By service name, in file order. */
  readonly services: Readonly<Record<string, ServiceConfig>>;
  /** By the name in the file (`default` included when a service uses it). */
  readonly networks: Readonly<Record<string, NetworkConfig>>;
  readonly volumes: Readonly<Record<string, VolumeConfig>>;
}

export interface NetworkConfig {
  /** The runtime's name: `<project>_<key>`, or `name:`, or the key itself when external. */
  readonly name: string;
  readonly external: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly subnet?: string;
}

export interface VolumeConfig {
  /** The runtime's name: `<project>_<key>`, or `name:`, or the key itself when external. */
  readonly name: string;
  readonly external: boolean;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ServicePort {
  readonly target: number;
  /** Undefined: a free host port is chosen when the container is made (docker's ephemeral port). */
  readonly published?: number;
  readonly hostIP?: string;
  readonly protocol: "tcp" | "udp";
}

export type ServiceVolume =
  /** `source` is a key of the project's volumes; none: an anonymous volume. */
  | { readonly type: "volume"; readonly source?: string; readonly target: string; readonly readOnly: boolean }
  /** `source` is absolute. */
  | { readonly type: "bind"; readonly source: string; readonly target: string; readonly readOnly: boolean };

export type DependencyCondition =
  | "service_started"
  | "service_healthy"
  | "service_completed_successfully";

export type PullPolicy = "always" | "missing" | "never";

export interface ServiceConfig {
  readonly name: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  /** env_file values first, then `environment:`; sorted by key. */
  readonly environment: Readonly<Record<string, string>>;
  readonly ports: readonly ServicePort[];
  readonly volumes: readonly ServiceVolume[];
  /** Keys of the project's networks, with this service's extra aliases on each. Empty with networkMode. */
  readonly networks: Readonly<Record<string, { readonly aliases: readonly string[] }>>;
  /** `network_mode: host|none`. */
  readonly networkMode?: "host" | "none";
  readonly dependsOn: Readonly<Record<string, { readonly condition: DependencyCondition }>>;
  readonly restart?: RestartPolicy;
  readonly healthcheck?: HealthCheck;
  readonly labels: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  readonly user?: string;
  readonly hostname?: string;
  readonly containerName?: string;
  /** deploy.replicas or scale; 1 by default. */
  readonly scale: number;
  readonly pullPolicy: PullPolicy;
  readonly tty: boolean;
  readonly stdinOpen: boolean;
  readonly readOnly: boolean;
  readonly dns: readonly string[];
  readonly memoryBytes?: number;
  readonly cpus?: number;
  readonly pidsLimit?: number;
}
