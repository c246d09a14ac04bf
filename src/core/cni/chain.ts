/**
 * Running a network configuration list against one attachment (CNI spec section 3): ADD through the
 * plugins in order, each given the previous one's result; DEL in reverse, each given the ADD's final
 * result; CHECK in order with that result too. Requests are derived from the plugin configs as libcni
 * derives them (name, cniVersion, prevResult, runtimeConfig from the declared capabilities).
 */
import type { BasicLogger } from "../../base/log.ts";
import { type CniCommand, type ExecOptions, execPlugin, findPlugin, PluginError } from "./exec.ts";
import { parseResult, resultAsVersion } from "./result.ts";
import type { CapabilityArgs, CniArgs, CniResult, NetworkConfigList, PluginConfig } from "./types.ts";
import { CURRENT_VERSION, hasCheckAndCachedDel } from "./version.ts";

/** One attachment: the spec's (CNI_CONTAINERID, CNI_IFNAME) plus what goes with it. */
export interface Attachment {
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: CniArgs;
  readonly capabilities: CapabilityArgs;
}

export interface ChainOptions extends ExecOptions {
  /** Folders searched in order for plugin binaries; also the plugins' CNI_PATH. */
  readonly binDirs: readonly string[];
  readonly logger?: BasicLogger;
}

/** The request a plugin reads on stdin (spec: "Deriving request configuration from plugin configuration"). */
function buildRequest(
  list: NetworkConfigList,
  plugin: PluginConfig,
  prevResult: CniResult | undefined,
  capabilities: CapabilityArgs,
): Record<string, unknown> {
  const request: Record<string, unknown> = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
  if (prevResult) request.prevResult = resultAsVersion(prevResult, list.cniVersion);
  else delete request.prevResult;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [capability, declared] of Object.entries(plugin.capabilities)) {
    if (declared && capabilities[capability] !== undefined) {
      runtimeConfig[capability] = capabilities[capability];
    }
  }
  // As libcni: `capabilities` stays (plugins are tested against libcni), runtimeConfig only when non-empty.
  if (Object.keys(runtimeConfig).length > 0) request.runtimeConfig = runtimeConfig;
  return request;
}

/** CNI_ARGS text. Keys and values cannot hold the separators, which plugins would split on. */
export function formatArgs(args: CniArgs): string {
  return args.map(([k, v]) => `${k}=${v}`).join(";");
}

async function run(
  command: CniCommand,
  list: NetworkConfigList,
  plugin: PluginConfig,
  prevResult: CniResult | undefined,
  at: Attachment,
  options: ChainOptions,
): Promise<string> {
  const what = { plugin: plugin.type, network: list.name, command, containerId: at.containerId };
  const path = await findPlugin(plugin.type, options.binDirs);
  if (!path) {
    throw new PluginError("failed_precondition", what, {
      msg: `no executable named ${JSON.stringify(plugin.type)} in ${options.binDirs.join(":")}`,
    });
  }
  const stdin = JSON.stringify(buildRequest(list, plugin, prevResult, at.capabilities));
  const out = await execPlugin(path, {
    env: {
      command,
      containerId: at.containerId,
      netns: at.netns,
      ifname: at.ifname,
      args: formatArgs(at.args),
      path: options.binDirs,
    },
    stdin,
    what,
  }, options);
  if (out.stderr !== "") {
    options.logger?.debug("CNI plugin wrote to stderr", {
      plugin: plugin.type,
      network: list.name,
      stderr: out.stderr,
    });
  }
  return out.stdout;
}

/** Partial progress of an ADD that failed: what the plugins that did succeed returned, for the DEL. */
export class AddError extends Error {
  readonly partial: CniResult | undefined;

  constructor(cause: unknown, partial: CniResult | undefined) {
    super((cause as Error).message, { cause });
    this.partial = partial;
  }
}

/** ADD through the list; throws AddError (its cause the plugin's error) when a plugin fails. */
export async function addList(
  list: NetworkConfigList,
  at: Attachment,
  options: ChainOptions,
): Promise<CniResult> {
  let result: CniResult | undefined;
  for (const plugin of list.plugins) {
    let stdout: string;
    try {
      stdout = await run("ADD", list, plugin, result, at, options);
    } catch (err) {
      throw new AddError(err, result);
    }
    try {
      result = parseResult(stdout, list.cniVersion);
    } catch (err) {
      const what = {
        plugin: plugin.type,
        network: list.name,
        command: "ADD" as const,
        containerId: at.containerId,
      };
      throw new AddError(
        new PluginError("internal", what, { msg: `unreadable result: ${(err as Error).message}` }, "", {
          cause: err,
        }),
        result,
      );
    }
  }
  return result!;
}

/**
 * DEL through the list in reverse, each plugin given `prevResult` (lists of 0.4.0 and newer). A plugin that says the container is
 * unknown (CNI error 3, or a "not found" message, which go-cni also lets pass) has nothing left to
 * undo, so the chain goes on; any other error stops it, as the spec says, and is thrown.
 */
export async function delList(
  list: NetworkConfigList,
  at: Attachment,
  options: ChainOptions & { readonly prevResult?: CniResult },
): Promise<void> {
  // Results were given to DEL from 0.4.0 on; older plugins may not expect one.
  const prevResult = hasCheckAndCachedDel(list.cniVersion) ? options.prevResult : undefined;
  for (const plugin of [...list.plugins].reverse()) {
    try {
      await run("DEL", list, plugin, prevResult, at, options);
    } catch (err) {
      if (err instanceof PluginError && (err.code === 3 || /not found/i.test(err.reason))) {
        options.logger?.debug("CNI plugin found nothing to delete", {
          plugin: plugin.type,
          error: err.message,
        });
        continue;
      }
      throw err;
    }
  }
}

/** CHECK through the list in order, each plugin given the ADD's result. */
export async function checkList(
  list: NetworkConfigList,
  at: Attachment,
  options: ChainOptions & { readonly prevResult: CniResult },
): Promise<void> {
  for (const plugin of list.plugins) await run("CHECK", list, plugin, options.prevResult, at, options);
}

/** Which spec versions the plugin binary `type` speaks (its VERSION answer). */
export async function pluginVersions(type: string, options: ChainOptions): Promise<string[]> {
  const what = { plugin: type, command: "VERSION" as const };
  const path = await findPlugin(type, options.binDirs);
  if (!path) {
    throw new PluginError("failed_precondition", what, {
      msg: `no executable named ${JSON.stringify(type)} in ${options.binDirs.join(":")}`,
    });
  }
  // Old skel-based plugins insist on these being set even for VERSION (libcni passes "dummy" too).
  const env = {
    command: "VERSION" as const,
    containerId: "",
    netns: "dummy",
    ifname: "dummy",
    args: "",
    path: ["dummy"],
  };
  const out = await execPlugin(
    path,
    { env, stdin: JSON.stringify({ cniVersion: CURRENT_VERSION }), what },
    options,
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.stdout);
  } catch {
    parsed = undefined;
  }
  const versions = (parsed as { supportedVersions?: unknown } | undefined)?.supportedVersions;
  if (!Array.isArray(versions) || versions.some((v) => typeof v !== "string")) {
    throw new PluginError("internal", what, { msg: `its VERSION answer has no supportedVersions list` });
  }
  return versions;
}
