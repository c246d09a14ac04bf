import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { SyscallError } from "../../ffi/libc.ts";
import { notFound } from "../base/errors.ts";
import { toConnectError } from "./errors.ts";

Deno.test("toConnectError() maps the core's kinds, a syscall's kind, aborts and the rest to gRPC codes", () => {
  assert.equal(toConnectError(notFound("Task x not found")).code, Code.NotFound);
  assert.equal(
    toConnectError(new SyscallError("kill(1, 9)", "Syscall failed", 3, "not_found")).code,
    Code.NotFound,
  );
  assert.equal(toConnectError(new SyscallError("mount", "Cannot mount", 22)).code, Code.Internal);
  assert.equal(toConnectError(new DOMException("stop", "AbortError")).code, Code.Canceled);
  assert.equal(toConnectError(new DOMException("late", "TimeoutError")).code, Code.DeadlineExceeded);
  assert.equal(toConnectError(new Error("boom")).code, Code.Internal);
  assert.equal(toConnectError(notFound("Task x not found")).rawMessage, "Task x not found");
});
