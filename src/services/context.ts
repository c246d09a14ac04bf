import type { HandlerContext } from "@connectrpc/connect";
import { failedPrecondition } from "../core/errdefs/mod.ts";
import { validateIdentifier } from "../core/identifiers/mod.ts";

export const namespaceHeader = "containerd-namespace";
export const leaseHeader = "containerd-lease";

/** The request's namespace, as containerd requires it: present and a valid identifier. */
export function namespaceOf(ctx: HandlerContext): string {
  const ns = ctx.requestHeader.get(namespaceHeader);
  if (ns === null || ns === "") {
    throw failedPrecondition(`Namespace is required: set the "${namespaceHeader}" header`);
  }
  validateIdentifier("namespace", ns);
  return ns;
}

/** The lease the client asked its new objects to be held by, if any. */
export function leaseOf(ctx: HandlerContext): string | undefined {
  return ctx.requestHeader.get(leaseHeader) ?? undefined;
}
