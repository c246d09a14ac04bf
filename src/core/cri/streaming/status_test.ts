import assert from "node:assert/strict";
import { internalError, nonZeroExit, statusBytes, statusJson, success } from "./status.ts";

Deno.test("statusJson writes success as Go's json.Marshal writes metav1.Status", () => {
  assert.equal(statusJson(success), `{"metadata":{},"status":"Success"}`);
});

Deno.test("statusJson writes a non-zero exit with its ExitCode cause, in Go's field order", () => {
  assert.equal(
    statusJson(nonZeroExit(["sh", "-c", "exit 7"], 7)),
    `{"metadata":{},"status":"Failure",` +
      `"message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7",` +
      `"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}`,
  );
});

Deno.test("statusJson writes an internal error as apierrors.NewInternalError does", () => {
  assert.equal(
    statusJson(internalError("error attaching to container: gone")),
    `{"metadata":{},"status":"Failure","message":"Internal error occurred: error attaching to container: gone",` +
      `"reason":"InternalError","details":{"causes":[{"message":"error attaching to container: gone"}]},"code":500}`,
  );
});

Deno.test("statusBytes sends JSON on v4 and the bare message on v2 and v3, nothing for their success", () => {
  const dec = (b?: Uint8Array) => b && new TextDecoder().decode(b);
  assert.equal(dec(statusBytes(success, "v4.channel.k8s.io")), `{"metadata":{},"status":"Success"}`);
  assert.equal(statusBytes(success, "v3.channel.k8s.io"), undefined);
  assert.equal(
    dec(statusBytes(nonZeroExit(["false"], 1), "v2.channel.k8s.io")),
    "command terminated with non-zero exit code: error executing command [false], exit code 1",
  );
});
