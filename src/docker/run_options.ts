/**
 * What `berth run` (the Docker form) and compose ask for when they make a container: Docker's flags,
 * parsed. One type, so compose services and the command line go through the same creation code.
 */

export type RestartPolicy =
  | { readonly name: "no" }
  | { readonly name: "always" }
  | { readonly name: "unless-stopped" }
  | { readonly name: "on-failure"; readonly maxRetries?: number };

export interface PortMapping {
  /** Default "0.0.0.0": every address of the host. */
  readonly hostIP: string;
  readonly hostPort: number;
  readonly containerPort: number;
  readonly protocol: "tcp" | "udp";
}

export type VolumeMount =
  | { readonly kind: "bind"; readonly source: string; readonly target: string; readonly readOnly: boolean }
  /** A named volume, made when missing; copied up from the image's content at first mount. */
  | { readonly kind: "volume"; readonly name: string; readonly target: string; readonly readOnly: boolean }
  /** An anonymous volume (`-v /data`, or the image's VOLUME): a generated name, removed with `rm -v`. */
  | { readonly kind: "anonymous"; readonly target: string; readonly readOnly: boolean };

export interface HealthCheck {
  /** Docker's forms: ["CMD", arg…], ["CMD-SHELL", "script"], or ["NONE"]. */
  readonly test: readonly string[];
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly startPeriodMs?: number;
}

export interface RunOptions {
  readonly image: string;
  /** Default: a generated `<image base>-<5 hex>` as nerdctl names them. */
  readonly name?: string;
  /** Replaces the image's CMD when given. */
  readonly command?: readonly string[];
  /** Replaces the image's ENTRYPOINT when given ([] clears it). */
  readonly entrypoint?: readonly string[];
  /** K=V, after the image's; a later one wins. */
  readonly env?: readonly string[];
  readonly ports?: readonly PortMapping[];
  readonly volumes?: readonly VolumeMount[];
  /** "bridge" (default), "host", "none", or user network names. */
  readonly networks?: readonly string[];
  readonly restart?: RestartPolicy;
  readonly labels?: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  readonly user?: string;
  readonly hostname?: string;
  /** Extra resolvers; default: the host's, loopback ones dropped. */
  readonly dns?: readonly string[];
  readonly memoryBytes?: number;
  readonly cpus?: number;
  readonly pidsLimit?: number;
  readonly tty?: boolean;
  readonly interactive?: boolean;
  readonly readOnly?: boolean;
  readonly healthcheck?: HealthCheck;
  /** Extra names this container answers to on its networks (compose's service name). */
  readonly aliases?: readonly string[];
}
