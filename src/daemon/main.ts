import { type FastFlag, fastFlag, readFlags } from "../base/fast_flags.ts";
import { type ConfigWarning, type DaemonConfig, loadConfig } from "./config.ts";
import { createLogger, type Logger, parseLogFormat, parseLogLevel, stderrIsJournal } from "./log.ts";
import { Daemon } from "./mod.ts";
import { SystemdNotifier } from "./notify.ts";
import { DebugEndpoint } from "./debug.ts";
import type { TaskManager } from "../core/runtime/mod.ts";
import { runtimePluginType } from "../plugins/ids.ts";
import { version } from "../version.ts";
import { unmapLargeAllocations } from "../base/large_allocations.ts";
import { skipEmptyClearTimeout } from "../base/timers.ts";

const defaultConfigPath = "/etc/berth/config.toml";

const usage = `Usage: berth daemon [options]

Run the Berth daemon (containerd-compatible API on a unix socket)

Options:
  -c, --config <path>      path to the configuration file (default: "${defaultConfigPath}")
  -a, --address <path>     address for the API socket
  --root <dir>             root directory for persistent data
  --state <dir>            state directory for runtime data
  -l, --log-level <level>  log level: trace, debug, info, warn, error or fatal
  --log-format <format>    log format: text or json
  -v, --version            output the version number
  -h, --help               display help for command`;

interface DaemonFlags {
  config: string;
  address?: string;
  root?: string;
  state?: string;
  logLevel?: string;
  logFormat?: string;
}

/** The daemon's flags, by every spelling. */
const DAEMON_FLAGS: ReadonlyMap<string, FastFlag> = new Map([
  ["-c", fastFlag("config", "value")],
  ["--config", fastFlag("config", "value")],
  ["-a", fastFlag("address", "value")],
  ["--address", fastFlag("address", "value")],
  ["--root", fastFlag("root", "value")],
  ["--state", fastFlag("state", "value")],
  ["-l", fastFlag("log-level", "value")],
  ["--log-level", fastFlag("log-level", "value")],
  ["--log-format", fastFlag("log-format", "value")],
  ["-v", fastFlag("version", "boolean")],
  ["--version", fastFlag("version", "boolean")],
  ["-h", fastFlag("help", "boolean")],
  ["--help", fastFlag("help", "boolean")],
]);

/**
 * The daemon's flags, read by base/fast_flags.ts rather than commander (node:child_process and friends,
 * ~11 ms of every daemon start) or node:util's parseArgs (~6 ms to load with node-compat).
 */
function parseFlags(args: string[]): DaemonFlags | number {
  const values: Record<string, string | boolean | undefined> = { config: defaultConfigPath };
  let why = "";
  const end = readFlags(args, 0, DAEMON_FLAGS, values, { explain: (w) => why = w });
  if (end === undefined || end < args.length) {
    console.error(
      `berth daemon: ${end === undefined ? why : `Unexpected argument ${args[end]}`}\n\n${usage}`,
    );
    return 1;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (values.version) {
    console.log(version);
    return 0;
  }
  try {
    if (values["log-level"] !== undefined) parseLogLevel(values["log-level"] as string);
    if (values["log-format"] !== undefined) parseLogFormat(values["log-format"] as string);
  } catch (err) {
    console.error(`berth daemon: ${(err as Error).message}`);
    return 1;
  }
  return {
    config: values.config as string,
    address: values.address as string | undefined,
    root: values.root as string | undefined,
    state: values.state as string | undefined,
    logLevel: values["log-level"] as string | undefined,
    logFormat: values["log-format"] as string | undefined,
  };
}

/** `berth daemon …`: parse flags over the config file, start, and stop cleanly on SIGTERM/SIGINT. */
export async function daemonMain(args: string[]): Promise<number> {
  const opts = parseFlags(args);
  if (typeof opts === "number") return opts;
  // A first call's end clears a deadline timer it may not have: that must not load Node's timers.
  skipEmptyClearTimeout();
  unmapLargeAllocations();
  // Taken before anything starts a shim, which would inherit it.
  const systemd = SystemdNotifier.fromEnv();

  let config: DaemonConfig;
  let warnings: ConfigWarning[];
  try {
    ({ config, warnings } = await loadConfig(opts.config, { optional: opts.config === defaultConfigPath }));
  } catch (err) {
    console.error(`berth: ${(err as Error).message}`);
    return 1;
  }
  if (opts.root) config.root = opts.root;
  if (opts.state) config.state = opts.state;
  if (opts.address) config.grpcAddress = opts.address;
  if (opts.logLevel) config.logLevel = parseLogLevel(opts.logLevel);
  if (opts.logFormat) config.logFormat = parseLogFormat(opts.logFormat);
  const log = createLogger({ level: config.logLevel, format: config.logFormat, journal: stderrIsJournal() });
  for (const w of warnings) log.warn(w.msg, w.fields);
  // A promise nobody waited for must not take every container's daemon down (Deno exits on an
  // unhandled rejection): it is a bug to log and fix, not a reason to stop serving.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    const reason = e.reason instanceof Error ? e.reason.stack ?? e.reason.message : String(e.reason);
    log.error("unhandled rejection", { error: reason });
  });

  let daemon: Daemon;
  let debug: DebugEndpoint | undefined;
  // Taken from the start: the API answers Version before every plugin has started, so a client may stop
  // (or ask for a dump from) a daemon that is still starting. It then stops once started.
  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const onSignal = (sig: Deno.Signal) => () => resolve(sig);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
    // containerd dumps its goroutines on SIGUSR1; Berth its counters and calls in flight, and serves on.
    ["SIGUSR1", () => debug?.dump()],
  ];
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  try {
    // The debug socket binds before the API's: a client must not find a daemon about to give up.
    daemon = await Daemon.start(config, log, {
      beforeServe: async (d) => {
        debug = debugEndpoint(d, config, log);
        if (!config.debugAddress) return;
        await debug.serve(config.debugAddress);
        return () => debug?.close();
      },
    });
  } catch (err) {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    log.error("failed to start", { error: (err as Error).message });
    return 1;
  }
  // Every plugin has started: a unit ordered After=berth.service may call any service.
  tellSystemd(systemd, "READY=1", log);
  const sig = await stopped;
  log.info("received signal", { signal: sig });
  tellSystemd(systemd, "STOPPING=1", log);
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await debug?.close();
  await daemon.stop();
  return 0;
}

/** The debug endpoint over the running daemon: its API activity and its runtime's shims and tasks. */
function debugEndpoint(daemon: Daemon, config: DaemonConfig, log: Logger): DebugEndpoint {
  const runtime = () => daemon.registry.getAll<TaskManager>(runtimePluginType).values().next().value;
  return new DebugEndpoint({
    api: () => daemon.apiActivity(),
    runtime: () => {
      const tasks = runtime();
      return tasks && { shims: tasks.shimCount, tasks: tasks.taskCount };
    },
  }, { state: config.state, log });
}

function tellSystemd(systemd: SystemdNotifier | undefined, state: string, log: Logger): void {
  if (!systemd) return;
  try {
    systemd.notify(state);
  } catch (err) {
    log.warn("cannot notify systemd", { state, socket: systemd.address, error: (err as Error).message });
  }
}
