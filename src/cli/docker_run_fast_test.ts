import assert from "node:assert/strict";
import type { Command } from "commander";
import { parseDockerRun } from "./docker_run_fast.ts";
import { buildProgram } from "./main.ts";
import { VERBS, verbsFor } from "./verbs.ts";
import type { GlobalOptions } from "./globals.ts";

/** What commander hands `berth run`'s action for `args`, the action itself replaced. */
async function commanderParse(args: string[]) {
  const program = await buildProgram(verbsFor(args, VERBS), "berth");
  const run = program.commands.find((c) => c.name() === "run")!;
  let seen: unknown;
  run.action((image: string, command: string[], flags: Record<string, unknown>, cmd: Command) => {
    seen = { image, command, flags, globals: cmd.parent!.opts<GlobalOptions>() };
  });
  await program.parseAsync(args, { from: "user" });
  return seen;
}

Deno.test("parseDockerRun() reads the plain forms of berth run's flags as commander does", async () => {
  const cases = [
    ["run", "--rm", "docker.io/library/busybox:latest", "/bin/true"],
    ["run", "busybox"],
    ["-a", "/run/x.sock", "-n", "ns1", "run", "-d", "--name", "web", "-p", "8080:80", "img"],
    ["--address=/s", "--namespace=ns", "--timeout", "10s", "--debug", "run", "-it", "img", "sh"],
    ["--data-root", "/d", "--cni-path", "/c", "--cni-netconfpath", "/n", "run", "-dit", "img"],
    ["run", "-e", "A=1", "--env=B=2", "--env", "C", "--env-file", "/e1", "--env-file", "/e2", "img"],
    ["run", "-v", "/a:/b", "--volume", "vol:/data:ro", "-w", "/w", "--workdir=/x", "img", "ls"],
    ["run", "-u", "1:2", "--user", "u", "--entrypoint", "", "--restart", "always", "img"],
    ["run", "-m", "512m", "--memory", "1g", "--cpus", "0.5", "--pids-limit", "10", "img"],
    ["run", "-h", "host1", "--hostname", "h2", "-l", "a=b", "--label", "c=d", "img"],
    ["run", "--network", "n1", "--net", "n2", "--net=host", "--dns", "1.1.1.1", "--read-only", "img"],
    ["run", "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--snapshotter", "native", "img"],
    ["run", "--runtime", "r", "--plain-http", "--key", "k1.pem", "--key", "k2.pem", "-i", "-t", "img"],
    ["run", "--interactive", "--tty", "--detach", "--publish", "1:2/udp", "img"],
    // From the image on, everything is the container's, flags included.
    ["run", "--rm", "img", "sh", "-c", "echo --rm -d"],
    ["run", "img", "--rm"],
    ["run", "-e", "--rm", "img"],
  ];
  for (const args of cases) {
    assert.deepEqual(parseDockerRun(args), await commanderParse(args), args.join(" "));
  }
});

Deno.test("parseDockerRun() leaves help, other verbs, unknown or valued combined flags and missing arguments to commander", () => {
  const cases = [
    [],
    ["--help"],
    ["run", "--help"],
    ["-v"],
    ["ps", "-a"],
    ["-n", "x", "logs", "web"],
    ["ctr", "run", "img", "id"],
    ["run"],
    ["run", "--rm"],
    ["run", "--name"],
    ["run", "-dp", "80:80", "img"],
    ["run", "-p8080:80", "img"],
    ["run", "--rm=true", "img"],
    ["run", "--nope", "img"],
    ["run", "--", "img"],
    ["-nx", "run", "img"],
    ["--bogus", "run", "img"],
    ["-a"],
  ];
  for (const args of cases) assert.equal(parseDockerRun(args), undefined, args.join(" "));
});
