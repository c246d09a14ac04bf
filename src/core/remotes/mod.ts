/**
 * The OCI distribution client: resolve references, fetch and push content. It knows nothing of a content
 * store; pulling into one is built on top of Resolver.resolve() and Fetcher.fetch().
 */

export { type RequestOptions, type Resolved, Resolver, type ResolverOptions } from "./resolver.ts";
export { Fetcher, type FetchOptions } from "./fetcher.ts";
export { Pusher, type PushOptions, type PushResult } from "./pusher.ts";
export {
  Authorizer,
  type Challenge,
  type Credentials,
  fetchToken,
  parseCredentials,
  parseWWWAuthenticate,
  repositoryScope,
} from "./auth.ts";
export { defaultDockerConfigPath, readDockerConfig } from "./credentials.ts";
export {
  type Capability,
  configureHosts,
  type HostsOptions,
  parseHostsToml,
  type RegistryHost,
} from "./hosts.ts";
