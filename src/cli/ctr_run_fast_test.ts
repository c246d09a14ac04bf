import assert from "node:assert/strict";
import type { Command } from "commander";
import { parseCtrRun } from "./ctr_run_fast.ts";
import { buildProgram } from "./main.ts";
import { CTR_VERBS, verbsFor } from "./verbs.ts";
import type { GlobalOptions } from "./globals.ts";

/** What commander hands `ctr run`'s action for `args`, the action itself replaced. */
async function commanderParse(args: string[]) {
  const program = await buildProgram(verbsFor(args, CTR_VERBS), "ctr");
  const run = program.commands.find((c) => c.name() === "run")!;
  let seen: unknown;
  run.action((ref: string, id: string, rest: string[], flags: Record<string, unknown>, cmd: Command) => {
    const { address, namespace, timeout } = cmd.parent!.opts<GlobalOptions>();
    seen = { ref, id, args: rest, flags, globals: { address, namespace, timeout } };
  });
  await program.parseAsync(args, { from: "user" });
  return seen;
}

Deno.test("parseCtrRun() reads the plain forms of ctr run's flags as commander does", async () => {
  const cases = [
    ["run", "--rm", "docker.io/library/busybox:latest", "c1", "/bin/true"],
    ["-a", "/run/x.sock", "-n", "ns1", "run", "--rm", "img", "c1", "true"],
    ["--address=/s", "--namespace=ns", "--timeout", "10s", "--debug", "run", "-d", "img", "c2"],
    [
      "--data-root",
      "/d",
      "--cni-path",
      "/c",
      "--cni-netconfpath",
      "/n",
      "--connect-timeout",
      "1s",
      "run",
      "i",
      "c",
    ],
    ["run", "--env", "A=1", "--env=B=2", "--label", "x=y", "--mount", "type=bind,src=/a,dst=/b", "i", "c"],
    ["run", "-t", "--null-io", "--fifo-dir", "/f", "--snapshotter", "native", "--runtime", "r", "i", "c"],
    ["run", "-u", "1:2", "--cwd", "/w", "--hostname", "h", "--net-host", "--read-only", "i", "c", "sh"],
    ["run", "--cap-add", "CAP_A", "--cap-drop", "CAP_B", "--cap-add", "CAP_C", "--cgroup", "/g", "i", "c"],
    ["run", "--plain-http", "-k", "--registry-user", "u:p", "--hosts-dir", "/h", "--key", "k1", "i", "c"],
    ["run", "--memory-limit", "1000", "--pids-limit", "5", "--cpus", "0.5", "--cpu-shares", "2", "i", "c"],
    ["run", "--env-file", "/e", "--annotation", "a=b", "--skip-verify", "--detach", "--tty", "i", "c"],
    ["run", "--user", "u", "--rm", "--rm", "--snapshotter", "a", "--snapshotter", "b", "i", "c"],
    // From the image on, everything is the container's, flags included.
    ["run", "--rm", "i", "c", "sh", "-c", "echo --rm -d"],
    ["run", "i", "--rm", "c"],
    ["run", "--env", "--rm", "i", "c"],
    ["run", "-", "c"],
  ];
  for (const args of cases) {
    assert.deepEqual(parseCtrRun(args), await commanderParse(args), args.join(" "));
  }
});

Deno.test("parseCtrRun() leaves help, other verbs, unknown or combined flags and missing arguments to commander", () => {
  const cases = [
    [],
    ["--help"],
    ["run", "--help"],
    ["run", "-h"],
    ["-v"],
    ["containers", "ls"],
    ["-n", "x", "tasks", "ls"],
    ["help", "run"],
    ["run"],
    ["run", "img"],
    ["run", "--rm"],
    ["run", "--env"],
    ["run", "-dt", "i", "c"],
    ["run", "--rm=true", "i", "c"],
    ["run", "--nope", "i", "c"],
    ["run", "--", "i", "c"],
    ["-nx", "run", "i", "c"],
    ["run", "-n", "x", "i", "c"],
    ["--bogus", "run", "i", "c"],
    ["-a"],
  ];
  for (const args of cases) assert.equal(parseCtrRun(args), undefined, args.join(" "));
});
