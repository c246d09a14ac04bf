import assert from "node:assert/strict";
import { compile, CompileError, explainFailure } from "./compile.ts";

/** A one-line program in a temp folder with no deno.json, so nothing but denort needs fetching. */
async function withTinyEntry(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-compile-test-" });
  try {
    await Deno.writeTextFile(`${dir}/tiny.ts`, 'console.log("tiny");\n');
    await Deno.mkdir(`${dir}/deno_dir`);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function offlineEnv(dir: string): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  return {
    ...env,
    // An empty cache, and a proxy on a closed loopback port: the download fails here whether or not
    // the machine has internet, and nothing leaves 127.0.0.1.
    DENO_DIR: `${dir}/deno_dir`,
    HTTPS_PROXY: "http://127.0.0.1:9",
    HTTP_PROXY: "http://127.0.0.1:9",
    NO_PROXY: "",
  };
}

Deno.test("compile() says to set DENORT_BIN when the denort runtime cannot be fetched", async () => {
  await withTinyEntry(async (dir) => {
    await assert.rejects(
      compile({
        entry: `${dir}/tiny.ts`,
        output: `${dir}/out/tiny`,
        env: offlineEnv(dir),
        echo: () => {},
        bundle: false,
      }),
      (err: unknown) => {
        assert.ok(err instanceof CompileError, String(err));
        assert.match(
          err.message,
          /^Cannot compile: the denort runtime could not be fetched; set DENORT_BIN to a local denort binary \(/,
        );
        assert.ok(err.message.includes(Deno.version.deno), "names the deno version to fetch denort for");
        return true;
      },
    );
    await assert.rejects(Deno.stat(`${dir}/out/tiny`), Deno.errors.NotFound);
  });
});

Deno.test("compile() rejects a DENORT_BIN that does not exist, naming it", async () => {
  await withTinyEntry(async (dir) => {
    const env = { ...offlineEnv(dir), DENORT_BIN: `${dir}/no-such-denort` };
    await assert.rejects(
      compile({ entry: `${dir}/tiny.ts`, output: `${dir}/out/tiny`, env, echo: () => {} }),
      new RegExp(`^CompileError: Cannot compile: DENORT_BIN=${dir}/no-such-denort does not exist$`),
    );
  });
});

Deno.test("compile() rejects a DENORT_BIN that is not executable", async () => {
  await withTinyEntry(async (dir) => {
    await Deno.writeTextFile(`${dir}/denort`, "not a binary");
    const env = { ...offlineEnv(dir), DENORT_BIN: `${dir}/denort` };
    await assert.rejects(
      compile({ entry: `${dir}/tiny.ts`, output: `${dir}/out/tiny`, env, echo: () => {} }),
      /is not an executable file/,
    );
  });
});

Deno.test("compile() rejects a deno CLI given as DENORT_BIN and leaves no output behind", async () => {
  await withTinyEntry(async (dir) => {
    const env = { ...offlineEnv(dir), DENORT_BIN: Deno.execPath() };
    await assert.rejects(
      compile({ entry: `${dir}/tiny.ts`, output: `${dir}/out/tiny`, env, echo: () => {}, bundle: false }),
      /is a deno CLI, not denort/,
    );
    await assert.rejects(Deno.stat(`${dir}/out/tiny`), Deno.errors.NotFound);
  });
});

Deno.test("compile() embeds scripts/bundle.ts's bundle by default: it bundles, compiles, then smoke-tests", async () => {
  await withTinyEntry(async (dir) => {
    // A deno CLI as the runtime: deno compile succeeds on the bundle, and the smoke test then refuses it.
    const env = { ...Deno.env.toObject(), DENORT_BIN: Deno.execPath() };
    const echoed: string[] = [];
    const dec = new TextDecoder();
    await assert.rejects(
      compile({
        entry: `${dir}/tiny.ts`,
        output: `${dir}/out/tiny`,
        env,
        echo: (c) => echoed.push(dec.decode(c)),
      }),
      /is a deno CLI, not denort/,
    );
    // deno compile listed what it embedded: the bundle's entry, not the module.
    assert.match(echoed.join(""), /tiny\.js/);
    assert.doesNotMatch(echoed.join(""), /tiny\.ts/);
  });
});

Deno.test("compile() says what to do when esbuild for bundling cannot be fetched", async () => {
  await withTinyEntry(async (dir) => {
    await assert.rejects(
      compile({ entry: `${dir}/tiny.ts`, output: `${dir}/out/tiny`, env: offlineEnv(dir), echo: () => {} }),
      /esbuild, which bundling uses, could not be fetched/,
    );
  });
});

Deno.test("explainFailure() passes other compile errors through with deno's last error line", () => {
  const msg = explainFailure('Check x.ts\nerror: Module not found "file:///x/y.ts".\n', undefined, 1);
  assert.equal(
    msg,
    'Cannot compile: deno compile exited with code 1 (error: Module not found "file:///x/y.ts".)',
  );
});
