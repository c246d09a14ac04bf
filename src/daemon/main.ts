import { Command, Option } from "commander";
import { type DaemonConfig, loadConfig } from "./config.ts";
import { createLogger, parseLogFormat, parseLogLevel } from "./log.ts";
import { Daemon } from "./mod.ts";
import { version } from "../version.ts";

const defaultConfigPath = "/etc/berth/config.toml";

/** `berth daemon …`: parse flags over the config file, start, and stop cleanly on SIGTERM/SIGINT. */
export async function daemonMain(args: string[]): Promise<number> {
  const cmd = new Command("berth daemon")
    .description("Run the Berth daemon (containerd-compatible API on a unix socket)")
    .option("-c, --config <path>", "path to the configuration file", defaultConfigPath)
    .option("-a, --address <path>", "address for the API socket")
    .option("--root <dir>", "root directory for persistent data")
    .option("--state <dir>", "state directory for runtime data")
    .addOption(
      new Option("-l, --log-level <level>", "log level").choices([
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
      ]),
    )
    .addOption(new Option("--log-format <format>", "log format").choices(["text", "json"]))
    .version(version, "-v, --version")
    .exitOverride()
    .configureOutput({ writeErr: (s) => console.error(s.trimEnd()) });
  try {
    cmd.parse(args, { from: "user" });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code ?? 1;
  }
  const opts = cmd.opts<{
    config: string;
    address?: string;
    root?: string;
    state?: string;
    logLevel?: string;
    logFormat?: string;
  }>();

  let config: DaemonConfig;
  let warnings: string[];
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
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  for (const w of warnings) log.warn(w);

  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (err) {
    log.error("failed to start", { error: (err as Error).message });
    return 1;
  }
  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const onSignal = (sig: Deno.Signal) => () => resolve(sig);
  const handlers = (["SIGTERM", "SIGINT"] as const).map((sig) => {
    const h = onSignal(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  const sig = await stopped;
  log.info("received signal", { signal: sig });
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await daemon.stop();
  return 0;
}
