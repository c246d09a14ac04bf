import type { HandlerContext } from "@connectrpc/connect";
import { failedPrecondition } from "../base/errors.ts";
import { validateIdentifier } from "../core/identifiers/mod.ts";

export const namespaceHeader = "containerd-namespace";
export const leaseHeader = "containerd-lease";

/**
 * The first of a metadata key's values. containerd's Go client puts the newest namespace (or lease) of a
 * context first and keeps the older ones after it; containerd reads only the first. Header objects join
 * repeated fields with ", ", which no identifier contains.
 */
function firstValue(ctx: HandlerContext, key: string): string | null {
  const joined = ctx.requestHeader.get(key);
  if (joined === null) return null;
  const comma = joined.indexOf(",");
  return comma < 0 ? joined : joined.slice(0, comma).trim();
}

/** The request's namespace, as containerd requires it: present and a valid identifier. */
export function namespaceOf(ctx: HandlerContext): string {
  const ns = firstValue(ctx, namespaceHeader);
  if (ns === null || ns === "") {
    throw failedPrecondition(`Namespace is required: set the "${namespaceHeader}" header`);
  }
  validateIdentifier("namespace", ns);
  return ns;
}

/** The lease the client asked its new objects to be held by, if any. */
export function leaseOf(ctx: HandlerContext): string | undefined {
  return firstValue(ctx, leaseHeader) ?? undefined;
}
