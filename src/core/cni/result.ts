/**
 * Plugin results (CNI spec section 5) in and out: what a plugin prints is read into one normalised
 * shape, and written back in the version the next plugin of the chain expects as `prevResult`. The
 * shapes differ little: before 1.0.0 every `ips` entry names its IP version ("4"/"6") and interfaces have
 * only name, mac and sandbox; 1.0.0 dropped `version` and added mtu, socketPath and pciID.
 */
import { ipFamily } from "../../base/ip.ts";
import type { CniDNS, CniInterface, CniIPConfig, CniResult, CniRoute } from "./types.ts";
import { compareVersions, isVersion } from "./version.ts";

/** The "error" result a failed plugin prints (spec section 5, Error). */
export interface CniErrorResult {
  readonly code?: number;
  readonly msg: string;
  readonly details?: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether `s` is an address with a prefix length, "10.1.2.3/24" or "fd00::5/64". */
export function isCidr(s: string): boolean {
  const slash = s.lastIndexOf("/");
  if (slash < 0) return false;
  const family = ipFamily(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** The address of a CIDR without its prefix length. */
export function addressOf(cidr: string): string {
  const slash = cidr.lastIndexOf("/");
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

class ResultError extends Error {}

function str(o: Json, key: string, where: string, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || (v === "" && !required)) {
    if (required) throw new ResultError(`${where} has no ${key}`);
    return undefined;
  }
  if (typeof v !== "string") throw new ResultError(`${where}.${key} is not a string`);
  return v;
}

function uint(o: Json, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new ResultError(`${where}.${key} is not a non-negative integer`);
  }
  return v;
}

function strings(o: Json, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw new ResultError(`${where}.${key} is not a list of strings`);
  }
  return v as string[];
}

function list(o: Json, key: string): Json[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObject)) throw new ResultError(`${key} is not a list of objects`);
  return v;
}

/** Drops undefined fields, so a written result has no `"mac": undefined` noise and compares cleanly. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function readInterface(o: Json, i: number): CniInterface {
  const where = `interfaces[${i}]`;
  return compact({
    name: str(o, "name", where, true)!,
    mac: str(o, "mac", where),
    mtu: uint(o, "mtu", where),
    sandbox: str(o, "sandbox", where),
    socketPath: str(o, "socketPath", where),
    pciID: str(o, "pciID", where),
  });
}

function readIP(o: Json, i: number, interfaces: number): CniIPConfig {
  const where = `ips[${i}]`;
  const address = str(o, "address", where, true)!;
  if (!isCidr(address)) {
    throw new ResultError(`${where}.address ${JSON.stringify(address)} is not an address/prefix`);
  }
  const gateway = str(o, "gateway", where);
  if (gateway !== undefined && ipFamily(gateway) === 0) {
    throw new ResultError(`${where}.gateway ${JSON.stringify(gateway)} is not an IP address`);
  }
  const index = uint(o, "interface", where);
  if (index !== undefined && index >= interfaces) {
    throw new ResultError(
      `${where}.interface ${index} is out of range: the result has ${interfaces} interfaces`,
    );
  }
  return compact({ address, gateway, interface: index });
}

function readRoute(o: Json, i: number): CniRoute {
  const where = `routes[${i}]`;
  const dst = str(o, "dst", where, true)!;
  if (!isCidr(dst)) throw new ResultError(`${where}.dst ${JSON.stringify(dst)} is not an address/prefix`);
  const gw = str(o, "gw", where);
  if (gw !== undefined && ipFamily(gw) === 0) {
    throw new ResultError(`${where}.gw ${JSON.stringify(gw)} is not an IP address`);
  }
  return compact({
    dst,
    gw,
    mtu: uint(o, "mtu", where),
    advmss: uint(o, "advmss", where),
    priority: uint(o, "priority", where),
    table: uint(o, "table", where),
    scope: uint(o, "scope", where),
  });
}

function readDNS(v: unknown): CniDNS {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new ResultError("dns is not an object");
  return compact({
    nameservers: strings(v, "nameservers", "dns"),
    domain: str(v, "domain", "dns"),
    search: strings(v, "search", "dns"),
    options: strings(v, "options", "dns"),
  });
}

/**
 * Reads a result object. `configVersion` stands in for a missing `cniVersion`, as libcni does (some
 * plugins leave it out). Throws a plain Error describing what is wrong; callers name the plugin.
 */
export function readResult(value: unknown, configVersion: string): CniResult {
  if (!isObject(value)) throw new ResultError("the result is not a JSON object");
  const declared = value.cniVersion;
  const cniVersion = typeof declared === "string" && declared !== "" ? declared : configVersion;
  if (!isVersion(cniVersion)) {
    throw new ResultError(`cniVersion ${JSON.stringify(cniVersion)} is not a version`);
  }
  if (compareVersions(cniVersion, "0.3.0") < 0) {
    throw new ResultError(
      `results of cniVersion ${cniVersion} (ip4/ip6) are not supported; use 0.3.0 or newer`,
    );
  }
  const interfaces = list(value, "interfaces").map(readInterface);
  return {
    cniVersion,
    interfaces,
    ips: list(value, "ips").map((o, i) => readIP(o, i, interfaces.length)),
    routes: list(value, "routes").map(readRoute),
    dns: readDNS(value.dns),
  };
}

/** Parses a plugin's stdout as a result; see readResult(). */
export function parseResult(stdout: string, configVersion: string): CniResult {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (err) {
    throw new ResultError(`the output is not JSON (${(err as Error).message}): ${preview(stdout)}`);
  }
  return readResult(value, configVersion);
}

/**
 * A result as JSON of `version`, the shape a plugin of that version expects as `prevResult` (libcni
 * converts the same way, GetAsVersion, and so drops what the older shape cannot hold).
 */
export function resultAsVersion(result: CniResult, version: string): Json {
  const legacy = compareVersions(version, "1.0.0") < 0;
  const interfaces = result.interfaces.map((i) =>
    legacy ? compact({ name: i.name, mac: i.mac, sandbox: i.sandbox }) : compact({ ...i })
  );
  const ips = result.ips.map((ip) =>
    legacy
      ? compact({
        version: ipFamily(addressOf(ip.address)) === 6 ? "6" : "4",
        interface: ip.interface,
        address: ip.address,
        gateway: ip.gateway,
      })
      : compact({ interface: ip.interface, address: ip.address, gateway: ip.gateway })
  );
  const out: Json = { cniVersion: version };
  if (interfaces.length > 0) out.interfaces = interfaces;
  if (ips.length > 0) out.ips = ips;
  if (result.routes.length > 0) out.routes = result.routes.map((r) => compact({ ...r }));
  out.dns = compact({ ...result.dns });
  return out;
}

/** Reads an error result; undefined when `stdout` is not one. */
export function parseErrorResult(stdout: string): CniErrorResult | undefined {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.msg !== "string") return undefined;
  return compact({
    code: typeof value.code === "number" ? value.code : undefined,
    msg: value.msg,
    details: typeof value.details === "string" && value.details !== "" ? value.details : undefined,
  });
}

/** At most ~200 characters of some output, for an error message. */
export function preview(text: string): string {
  const t = text.trim();
  return JSON.stringify(t.length > 200 ? `${t.slice(0, 200)}…` : t);
}
