import assert from "node:assert/strict";
import type { Command } from "commander";
import { parseDockerRm } from "./docker_rm_fast.ts";
import { buildProgram } from "./main.ts";
import { VERBS, verbsFor } from "./verbs.ts";
import type { GlobalOptions } from "./globals.ts";

/** What commander hands `berth rm`'s action for `args`, the action itself replaced. */
async function commanderParse(args: string[]) {
  const program = await buildProgram(verbsFor(args, VERBS), "berth");
  const rm = program.commands.find((c) => c.name() === "rm")!;
  let seen: unknown;
  rm.action((refs: string[], flags: Record<string, unknown>, cmd: Command) => {
    seen = { refs, flags, globals: cmd.parent!.opts<GlobalOptions>() };
  });
  await program.parseAsync(args, { from: "user" });
  return seen;
}

Deno.test("parseDockerRm() reads the plain forms of berth rm's flags as commander does", async () => {
  const cases = [
    ["rm", "web"],
    ["rm", "-f", "web"],
    ["rm", "--force", "--volumes", "a", "b"],
    ["rm", "-fv", "web"],
    ["rm", "-vf", "a", "-f", "b"],
    ["-a", "/run/x.sock", "-n", "ns1", "rm", "-f", "web"],
    ["--data-root", "/d", "--cni-path", "/c", "--cni-netconfpath", "/n", "rm", "x"],
    ["--address=/s", "--namespace=ns", "--timeout", "10s", "--debug", "rm", "-v", "x"],
  ];
  for (const args of cases) {
    assert.deepEqual(parseDockerRm(args), await commanderParse(args), args.join(" "));
  }
});

Deno.test("parseDockerRm() leaves help, other verbs, unknown flags and missing names to commander", () => {
  const cases = [
    [],
    ["rm"],
    ["rm", "-f"],
    ["rm", "--help"],
    ["rm", "-h", "x"],
    ["rm", "--force=true", "x"],
    ["rm", "-fx", "web"],
    ["rm", "--nope", "x"],
    ["rm", "--", "x"],
    ["ps", "-a"],
    ["ctr", "rm", "x"],
    ["--bogus", "rm", "x"],
  ];
  for (const args of cases) assert.equal(parseDockerRm(args), undefined, args.join(" "));
});
