/**
 * Berth: one executable, three roles. argv picks the role: `berth daemon …` (or an executable named
 * `berthd` / `containerd`) runs the daemon, `berth shim …` a task shim, anything else the CLI.
 */
const invokedAs = (Deno.build.standalone ? Deno.execPath() : "").replace(/^.*\//, "");
const args = [...Deno.args];

let code: number;
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
  // Answered before any module loads: scripts call this to probe for Berth.
  const { version } = await import("./src/version.ts");
  console.log(`berth ${version}`);
  code = 0;
} else if (invokedAs === "berthd" || invokedAs === "containerd" || args[0] === "daemon") {
  if (args[0] === "daemon") args.shift();
  const { daemonMain } = await import("./src/daemon/main.ts");
  code = await daemonMain(args);
} else if (args.length % 2 === 0 && args.some((a, i) => i % 2 === 0 && a === "_BERTH_INTERNAL_LOGGING")) {
  // A json-file log URI's binary, run by a foreign shim (compiled builds: from source argv[0] is deno).
  // containerd's shim passes the URI's query as key, value pairs in Go's map order: any pair may come first.
  const { jsonFileLoggerProcess } = await import("./src/shim/json_file_logger_main.ts");
  code = await jsonFileLoggerProcess(args);
} else if (args.length === 3 && args[0] === "internal" && args[1] === "oci-hook") {
  // runc runs this for each Docker-style container of a foreign shim: the hook alone, no CLI program.
  const { ociHookProcess } = await import("./src/cli/oci_hook_main.ts");
  code = await ociHookProcess(args[2]!);
} else if (args[0] === "shim") {
  const { shimMain } = await import("./src/shim/main.ts");
  code = await shimMain(args.slice(1));
} else {
  const { cliMain } = await import("./src/cli/main.ts");
  code = await cliMain(args, invokedAs);
}
Deno.exit(code);
