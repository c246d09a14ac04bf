import assert from "node:assert/strict";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { leaseOf, namespaceOf } from "./context.ts";

function ctxWith(pairs: [string, string][]): HandlerContext {
  const requestHeader = new Headers();
  for (const [k, v] of pairs) requestHeader.append(k, v);
  return { requestHeader, values: createContextValues() } as unknown as HandlerContext;
}

Deno.test("namespaceOf() reads the first of repeated containerd-namespace fields, as containerd does", () => {
  // The Go client sends the newest namespace first when a context is re-namespaced.
  const ctx = ctxWith([["containerd-namespace", "inner"], ["containerd-namespace", "outer"]]);
  assert.equal(namespaceOf(ctx), "inner");
  assert.equal(namespaceOf(ctxWith([["containerd-namespace", "only"]])), "only");
  assert.throws(() => namespaceOf(ctxWith([])), /Namespace is required/);
});

Deno.test("leaseOf() reads the first of repeated containerd-lease fields", () => {
  assert.equal(leaseOf(ctxWith([["containerd-lease", "l2"], ["containerd-lease", "l1"]])), "l2");
  assert.equal(leaseOf(ctxWith([])), undefined);
});
