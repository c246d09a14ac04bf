import assert from "node:assert/strict";
import { Command } from "commander";
import { buildProgram } from "./main.ts";
import { commandMode, CTR_VERBS, VERBS, verbsFor } from "./verbs.ts";

const names = (args: string[]) => verbsFor(args).map((v) => v.names[0]);
const ALL = VERBS.map((v) => v.names[0]);

Deno.test("verbsFor() picks the verb after the global flags and their values, by name or alias", () => {
  assert.deepEqual(names(["version"]), ["version"]);
  assert.deepEqual(names(["-a", "/s", "-n", "x", "containers", "ls"]), ["containers"]);
  assert.deepEqual(names(["--address=/s", "--namespace=x", "c", "ls"]), ["containers"]);
  assert.deepEqual(names(["-a/s", "-nx", "--debug", "i", "ls"]), ["images"]);
  assert.deepEqual(names(["--timeout", "10s", "--connect-timeout", "1s", "task", "ls"]), ["tasks"]);
  // Only the first non-flag argument counts: the rest belongs to the verb.
  assert.deepEqual(names(["run", "-d", "img", "tasks", "sh"]), ["run"]);
  // A flag value that happens to be a verb's name is still a value.
  assert.deepEqual(names(["-n", "run", "version"]), ["version"]);
});

Deno.test("verbsFor() loads every verb for help, no verb, an unknown verb or an unknown flag", () => {
  const cases = [
    [],
    ["--help"],
    ["-h", "run"],
    ["help", "run"],
    ["--version"],
    ["nope"],
    ["imgaes"],
    ["-a", "/s"],
    ["--bogus", "version"],
    ["-x", "containers"],
    ["--", "version"],
    ["daemon"],
  ];
  for (const args of cases) {
    assert.deepEqual(names(args), ALL, args.join(" "));
  }
});

Deno.test("each verb's table entry names the command and aliases its module declares", async () => {
  for (const verb of VERBS) {
    const program = new Command("berth").enablePositionalOptions();
    (await verb.load())(program);
    assert.equal(program.commands.length, 1, verb.names.join(","));
    const [cmd] = program.commands;
    assert.deepEqual([cmd!.name(), ...cmd!.aliases()], verb.names);
  }
});

Deno.test("buildProgram() adds only the verbs asked for, and all of them in help order by default", async () => {
  const one = await buildProgram(verbsFor(["-a", "/s", "version"]));
  assert.deepEqual(one.commands.map((c) => c.name()), ["daemon", "shim", "version"]);
  const all = await buildProgram();
  assert.deepEqual(all.commands.map((c) => c.name()), ["daemon", "shim", ...ALL]);
});

Deno.test("commandMode() gives ctr's verbs after `ctr`, or when the binary is named ctr", () => {
  assert.deepEqual(commandMode(["-n", "x", "ctr", "run", "img", "id"]), {
    mode: "ctr",
    args: ["-n", "x", "run", "img", "id"],
  });
  assert.deepEqual(commandMode(["run", "img", "ctr"]), { mode: "berth", args: ["run", "img", "ctr"] });
  assert.deepEqual(commandMode(["run", "img", "id"], "ctr"), { mode: "ctr", args: ["run", "img", "id"] });
  assert.deepEqual(verbsFor(["run"], CTR_VERBS).map((v) => v.names[0]), ["run"]);
  assert.notEqual(verbsFor(["run"], CTR_VERBS)[0], verbsFor(["run"])[0]);
});
