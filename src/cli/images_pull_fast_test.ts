import assert from "node:assert/strict";
import type { Command } from "commander";
import { parseImagesPull } from "./images_pull_fast.ts";
import { buildProgram } from "./main.ts";
import { VERBS, verbsFor } from "./verbs.ts";
import type { GlobalOptions } from "./globals.ts";

/** What commander hands `images pull`'s action for `args`, the action itself replaced. */
async function commanderParse(args: string[]) {
  const program = await buildProgram(verbsFor(args, VERBS));
  const pull = program.commands.find((c) => c.name() === "images")!.commands.find((c) =>
    c.name() === "pull"
  )!;
  let seen: unknown;
  pull.action((ref: string, flags: Record<string, unknown>, cmd: Command) => {
    const { address, namespace, timeout } = cmd.parent!.parent!.opts<GlobalOptions>();
    seen = { ref, flags, globals: { address, namespace, timeout } };
  });
  await program.parseAsync(args, { from: "user" });
  return seen;
}

Deno.test("parseImagesPull() reads the plain forms of images pull's flags as commander does", async () => {
  const cases = [
    ["images", "pull", "docker.io/library/busybox:latest"],
    ["-a", "/run/x.sock", "-n", "ns1", "images", "pull", "--plain-http", "127.0.0.1:5000/a:v1"],
    ["--address=/s", "--namespace=ns", "--timeout", "10s", "--debug", "image", "pull", "r"],
    ["i", "pull", "-u", "u:p", "--hosts-dir", "/h", "-k", "--skip-verify", "r"],
    ["images", "pull", "--platform", "linux/amd64", "--platform=linux/arm64", "--all-platforms", "r"],
    ["images", "pull", "--snapshotter", "native", "--max-concurrent-downloads", "3", "r"],
    ["images", "pull", "--label", "a=b", "--label=c=d", "--key", "/k1", "--key", "/k2", "--skip-unpack", "r"],
    ["images", "pull", "--user=x", "--plain-http", "--plain-http", "r"],
  ];
  for (const args of cases) {
    assert.deepEqual(parseImagesPull(args), await commanderParse(args), args.join(" "));
  }
});

Deno.test("parseImagesPull() leaves help, other verbs, flags after the reference and odd arguments to commander", () => {
  const cases = [
    [],
    ["images", "pull"],
    ["images", "pull", "--help"],
    ["images", "pull", "-h", "r"],
    ["images", "ls"],
    ["pull", "r"],
    ["images", "pull", "r", "--plain-http"],
    ["images", "pull", "r", "s"],
    ["images", "pull", "--plain-http=true", "r"],
    ["images", "pull", "--nope", "r"],
    ["images", "pull", "--", "r"],
    ["images", "pull", "-ku", "x", "r"],
    ["-n", "x", "pull", "images", "r"],
    ["--bogus", "images", "pull", "r"],
    ["images", "--plain-http", "pull", "r"],
  ];
  for (const args of cases) assert.equal(parseImagesPull(args), undefined, args.join(" "));
});
