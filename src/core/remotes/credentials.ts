/** Registry credentials from docker's client config (`~/.docker/config.json`, `auths.<host>.auth`). */

import { type Credentials, parseCredentials } from "./auth.ts";

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
}

/** `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. */
export function defaultDockerConfigPath(): string | undefined {
  const dir = Deno.env.get("DOCKER_CONFIG");
  if (dir) return `${dir}/config.json`;
  const home = Deno.env.get("HOME");
  return home ? `${home}/.docker/config.json` : undefined;
}

/**
 * Reads the credentials for every host in a docker config file; a missing file means none. A malformed
 * file is an error worth seeing rather than silently pulling anonymously.
 */
export function readDockerConfig(path: string): Map<string, Credentials> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return new Map();
    throw err;
  }
  let config: DockerConfig;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new Error(`Docker config ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const out = new Map<string, Credentials>();
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    let creds: Credentials | undefined;
    if (entry.auth) {
      const decoded = new TextDecoder().decode(Uint8Array.from(atob(entry.auth), (c) => c.charCodeAt(0)));
      creds = parseCredentials(decoded);
    } else if (entry.username) {
      creds = { username: entry.username, password: entry.password ?? "" };
    }
    if (creds) out.set(hostOfConfigKey(key), creds);
  }
  return out;
}

/** Docker keys may be URLs (`https://index.docker.io/v1/`) or bare hosts. */
function hostOfConfigKey(key: string): string {
  let host = key.replace(/^https?:\/\//, "");
  const slash = host.indexOf("/");
  if (slash >= 0) host = host.slice(0, slash);
  return host;
}

/** The config keys a registry host's credentials may be stored under. */
export function configHostsFor(host: string): string[] {
  if (host === "docker.io" || host === "registry-1.docker.io" || host === "index.docker.io") {
    return ["index.docker.io", "docker.io", "registry-1.docker.io"];
  }
  return [host];
}
