/**
 * The Compose spec subset Berth runs, read from an interpolated, merged tree into a ComposeProject:
 * short forms expanded, references (networks, volumes, depends_on) checked, unknown keys rejected with
 * their line. What Berth cannot do (build, secrets, tmpfs mounts, …) fails here with a clear message
 * rather than being silently dropped.
 */
import type { ComposeProject, NetworkConfig, ServiceConfig, VolumeConfig } from "./model.ts";
import { asMap, bool, checkKeys, field, type MapNode, optBool, optStr, seq } from "./values.ts";
import { ComposeError, type YNode } from "./yaml_tree.ts";
import { labelsOf, type NormalizeContext, readService } from "./service.ts";

export { type NormalizeContext, resolvePath } from "./service.ts";

const TOP_KEYS = ["version", "name", "services", "networks", "volumes"];
const UNSUPPORTED_TOP = ["secrets", "configs", "include"];
/** Service, network and volume names compose accepts. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function normalizeProject(root: YNode, ctx: NormalizeContext): ComposeProject {
  const top = asMap(root, "A compose file");
  for (const [key, entry] of top.entries) {
    if (UNSUPPORTED_TOP.includes(key)) {
      throw new ComposeError(`Top-level "${key}" is not supported by berth compose`, entry.keyPos);
    }
  }
  checkKeys(top, TOP_KEYS, "the top level");
  const servicesNode = field(top, "services");
  if (!servicesNode || (servicesNode.kind === "scalar" && servicesNode.value === null)) {
    throw new ComposeError(`No services defined in ${ctx.configFiles.join(", ")}`);
  }
  const servicesMap = asMap(servicesNode, "services");
  const networks = readNetworks(field(top, "networks"), ctx);
  const volumes = readVolumes(field(top, "volumes"), ctx);

  const services: Record<string, ServiceConfig> = {};
  for (const [name, entry] of servicesMap.entries) {
    if (!NAME_RE.test(name)) throw new ComposeError(`Invalid service name "${name}"`, entry.keyPos);
    services[name] = readService(name, entry.value, ctx, { networks, volumes });
  }
  // depends_on may point forward in the file: checked once every service is known.
  for (const [name, entry] of servicesMap.entries) {
    const deps = field(asMap(entry.value, `Service "${name}"`), "depends_on");
    for (const dep of Object.keys(services[name]!.dependsOn)) {
      if (!services[dep]) {
        throw new ComposeError(
          `Service "${name}" depends on undefined service "${dep}"`,
          deps?.pos ?? entry.keyPos,
        );
      }
    }
  }
  // The implicit default network exists only when some service is on it.
  const usesDefault = Object.values(services).some((s) => s.networks.default);
  if (usesDefault && !networks.default) {
    networks.default = { name: `${ctx.projectName}_default`, external: false, labels: {} };
  }
  return {
    name: ctx.projectName,
    workingDir: ctx.workingDir,
    configFiles: ctx.configFiles,
    services,
    networks,
    volumes,
  };
}

function readNetworks(node: YNode | undefined, ctx: NormalizeContext): Record<string, NetworkConfig> {
  const out: Record<string, NetworkConfig> = {};
  if (!node || (node.kind === "scalar" && node.value === null)) return out;
  for (const [key, entry] of asMap(node, "networks").entries) {
    if (!NAME_RE.test(key)) throw new ComposeError(`Invalid network name "${key}"`, entry.keyPos);
    const what = `network "${key}"`;
    if (entry.value.kind === "scalar" && entry.value.value === null) {
      out[key] = { name: `${ctx.projectName}_${key}`, external: false, labels: {} };
      continue;
    }
    const map = asMap(entry.value, `Network "${key}"`);
    checkKeys(map, ["name", "external", "driver", "labels", "ipam", "attachable", "internal"], what);
    const driver = optStr(field(map, "driver"), `The driver of ${what}`);
    if (driver !== undefined && driver !== "bridge") {
      throw new ComposeError(
        `Network driver "${driver}" is not supported (only bridge)`,
        field(map, "driver")!.pos,
      );
    }
    if (optBool(field(map, "internal"), `internal of ${what}`)) {
      throw new ComposeError(`Internal networks are not supported`, field(map, "internal")!.pos);
    }
    const external = readExternal(map, what);
    const name = optStr(field(map, "name"), `The name of ${what}`) ?? external.name;
    let subnet: string | undefined;
    const ipam = field(map, "ipam");
    if (ipam) {
      const ipamMap = asMap(ipam, `ipam of ${what}`);
      checkKeys(ipamMap, ["driver", "config"], `ipam of ${what}`);
      const config = field(ipamMap, "config");
      for (const item of config ? seq(config, `ipam.config of ${what}`) : []) {
        const c = asMap(item, `An ipam.config item of ${what}`);
        checkKeys(c, ["subnet"], `ipam.config of ${what}`);
        subnet = optStr(field(c, "subnet"), `subnet of ${what}`);
      }
    }
    out[key] = {
      name: name ?? (external.is ? key : `${ctx.projectName}_${key}`),
      external: external.is,
      labels: labelsOf(field(map, "labels"), `labels of ${what}`),
      ...(subnet ? { subnet } : {}),
    };
  }
  return out;
}

function readVolumes(node: YNode | undefined, ctx: NormalizeContext): Record<string, VolumeConfig> {
  const out: Record<string, VolumeConfig> = {};
  if (!node || (node.kind === "scalar" && node.value === null)) return out;
  for (const [key, entry] of asMap(node, "volumes").entries) {
    if (!NAME_RE.test(key)) throw new ComposeError(`Invalid volume name "${key}"`, entry.keyPos);
    const what = `volume "${key}"`;
    if (entry.value.kind === "scalar" && entry.value.value === null) {
      out[key] = { name: `${ctx.projectName}_${key}`, external: false, labels: {} };
      continue;
    }
    const map = asMap(entry.value, `Volume "${key}"`);
    checkKeys(map, ["name", "external", "driver", "labels"], what);
    const driver = optStr(field(map, "driver"), `The driver of ${what}`);
    if (driver !== undefined && driver !== "local") {
      throw new ComposeError(
        `Volume driver "${driver}" is not supported (only local)`,
        field(map, "driver")!.pos,
      );
    }
    const external = readExternal(map, what);
    const name = optStr(field(map, "name"), `The name of ${what}`) ?? external.name;
    out[key] = {
      name: name ?? (external.is ? key : `${ctx.projectName}_${key}`),
      external: external.is,
      labels: labelsOf(field(map, "labels"), `labels of ${what}`),
    };
  }
  return out;
}

/** `external: true`, or the legacy `external: {name: x}`. */
function readExternal(map: MapNode, what: string): { is: boolean; name?: string } {
  const node = field(map, "external");
  if (!node) return { is: false };
  if (node.kind === "map") {
    checkKeys(node, ["name"], `external of ${what}`);
    const name = optStr(field(node, "name"), `external.name of ${what}`);
    return name ? { is: true, name } : { is: true };
  }
  return { is: bool(node, `external of ${what}`) };
}
