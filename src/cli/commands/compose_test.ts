import assert from "node:assert/strict";
import { buildProgram } from "../main.ts";
import { composeCommand } from "./compose.ts";

const COMPOSE = `
name: shop
services:
  web:
    image: nginx
    depends_on: [db]
  db:
    image: postgres
`;

/** Runs `berth <args>` in process; returns what it wrote to stdout, or the error it failed with. */
async function berth(args: string[]): Promise<{ out: string; error?: string }> {
  const program = await buildProgram([{ names: ["compose"], load: () => Promise.resolve(composeCommand) }]);
  let out = "";
  const original = Deno.stdout.writeSync;
  const log = console.log;
  Deno.stdout.writeSync = (p: Uint8Array) => {
    out += new TextDecoder().decode(p);
    return p.length;
  };
  console.log = (...parts: unknown[]) => void (out += parts.join(" ") + "\n");
  try {
    await program.parseAsync(args, { from: "user" });
    return { out };
  } catch (err) {
    return { out, error: (err as Error).message };
  } finally {
    Deno.stdout.writeSync = original;
    console.log = log;
  }
}

Deno.test("berth compose config prints the normalized project; --services the names in file order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-compose-cli-" });
  try {
    await Deno.writeTextFile(`${dir}/app.yml`, COMPOSE);
    const full = await berth(["compose", "-f", `${dir}/app.yml`, "config"]);
    assert.equal(full.error, undefined);
    assert.ok(full.out.startsWith("name: shop\nservices:\n  web:\n    image: nginx\n"), full.out);
    assert.ok(full.out.includes("depends_on:\n      db:\n        condition: service_started\n"), full.out);
    const names = await berth([
      "compose",
      "--project-directory",
      dir,
      "-f",
      `${dir}/app.yml`,
      "config",
      "--services",
    ]);
    assert.equal(names.out, "web\ndb\n");
    assert.deepEqual(await berth(["compose", "-f", `${dir}/app.yml`, "config", "-q"]), { out: "" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("berth compose verbs keep their own flags after the verb (logs -f, exec sh -c)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-compose-cli-" });
  try {
    await Deno.writeTextFile(`${dir}/compose.yaml`, COMPOSE);
    // Parsing reaches the runtime backend, which finds no daemon at the address: the flags were read as the
    // verb's, or commander would have failed first.
    const noDaemon = /absent\.sock|ENOENT|ECONNREFUSED|No such file/i;
    for (
      const args of [
        ["logs", "-f", "--tail", "5", "web"],
        ["exec", "-T", "-e", "A=1", "web", "sh", "-c", "echo hi"],
        ["up", "-d", "--remove-orphans", "web"],
        ["down", "-v"],
        ["ps", "-a", "--format", "json"],
        ["stop", "-t", "3"],
      ]
    ) {
      const r = await berth([
        "--address",
        `${dir}/absent.sock`,
        "compose",
        "--project-directory",
        dir,
        ...args,
      ]);
      assert.match(r.error ?? "", noDaemon, args.join(" "));
    }
    const bad = await berth(["compose", "--project-directory", dir, "-f", "missing.yml", "ps"]);
    assert.match(bad.error ?? "", /Cannot read compose file ".*missing\.yml": not found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
