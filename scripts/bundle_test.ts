import assert from "node:assert/strict";
import { lazyRequire } from "./bundle.ts";

Deno.test("lazyRequire() replaces esbuild's eager createRequire preamble and leaves other chunks alone", () => {
  const chunk =
    'var __create = Object.create;\nimport { createRequire as __deno_internal_createRequire } from "node:module";\n' +
    "var __require = __deno_internal_createRequire(import.meta.url);\nvar x = 1;\n";
  const out = lazyRequire(chunk);
  assert.ok(!out.includes("node:module"));
  assert.ok(out.includes("var __require = (id) => process.getBuiltinModule(id);\nvar x = 1;"));
  assert.equal(lazyRequire("var y = 2;\n"), "var y = 2;\n");
});
