import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { isNotFound } from "../base/errors.ts";
import { OptionsSchema } from "../gen/types/runc/options/oci_pb.ts";
import { DEFAULT_RUNC_ROOT, killError, runtimeOptions } from "./container.ts";
import { RuncError } from "./runc.ts";

function runcOptions(root: string) {
  return create(AnySchema, {
    typeUrl: "containerd.runc.v1.Options",
    value: toBinary(OptionsSchema, create(OptionsSchema, { root })),
  });
}

Deno.test("runtimeOptions() keeps runc's state for a namespace in a folder below the root", () => {
  assert.equal(runtimeOptions(undefined, "ns1").root, `${DEFAULT_RUNC_ROOT}/ns1`);
  // containerd's shim joins the namespace to Options.Root too: `runc --root <root>/<ns>` finds it.
  assert.equal(runtimeOptions(runcOptions("/tmp/r"), "ns1").root, "/tmp/r/ns1");
  assert.equal(runtimeOptions(runcOptions("/tmp/r/"), "ns1").root, "/tmp/r/ns1");
});

Deno.test("killError() makes a gone process or a container runc no longer knows not found", () => {
  const runc = (msg: string) => new RuncError("internal", "runc kill c1", msg, {});
  for (const msg of ["container does not exist", "container not running", "no such process"]) {
    const err = killError("c1", runc(msg));
    assert.ok(isNotFound(err), `${msg}: ${err.message}`);
  }
  const other = runc("permission denied");
  assert.equal(killError("c1", other), other);
});
