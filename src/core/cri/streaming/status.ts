/**
 * The outcome of an exec or attach as the remotecommand error stream carries it: a metav1.Status, in
 * JSON on protocol v4 (field order and omissions as Go's encoding/json writes the apimachinery type),
 * as its bare message on v2 and v3, where success sends nothing. Wording of the messages is the
 * kubelet's and containerd's, since clients show it as it comes.
 */

export interface StatusCause {
  /** Go's StatusCause.Type, whose JSON name is "reason". */
  readonly reason?: string;
  readonly message?: string;
}

export interface Status {
  readonly status: "Success" | "Failure";
  readonly message?: string;
  readonly reason?: string;
  readonly causes?: readonly StatusCause[];
  /** An HTTP status code. */
  readonly code?: number;
}

export const success: Status = { status: "Success" };

/**
 * A command that ran and exited non-zero: the v4 client reads the code from the ExitCode cause. The
 * message is the one containerd's CRI runtime builds (exec.CodeExitError around "error executing
 * command [cmd], exit code N").
 */
export function nonZeroExit(cmd: readonly string[], exitCode: number): Status {
  return {
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${
      cmd.join(" ")
    }], exit code ${exitCode}`,
    reason: "NonZeroExitCode",
    causes: [{ reason: "ExitCode", message: String(exitCode) }],
  };
}

/** apierrors.NewInternalError(err): what the kubelet reports when exec or attach itself failed. */
export function internalError(message: string): Status {
  return {
    status: "Failure",
    message: `Internal error occurred: ${message}`,
    reason: "InternalError",
    causes: [{ message }],
    code: 500,
  };
}

/** metav1.Status as JSON: `metadata` always (an empty ListMeta), the rest only when set. */
export function statusJson(s: Status): string {
  const causes = s.causes?.map((c) => ({
    ...(c.reason ? { reason: c.reason } : {}),
    ...(c.message ? { message: c.message } : {}),
  }));
  return JSON.stringify({
    metadata: {},
    status: s.status,
    ...(s.message ? { message: s.message } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
    ...(causes?.length ? { details: { causes } } : {}),
    ...(s.code ? { code: s.code } : {}),
  });
}

/** What the error stream carries for `s` on `protocol`; undefined when nothing is written. */
export function statusBytes(s: Status, protocol: string): Uint8Array | undefined {
  if (protocol === "v4.channel.k8s.io") return new TextEncoder().encode(statusJson(s));
  if (s.status === "Success") return undefined;
  return new TextEncoder().encode(s.message ?? "");
}
