/**
 * Image references, parsed and normalised the way docker and containerd do (distribution's reference
 * grammar): `busybox` is `docker.io/library/busybox:latest`.
 */

import { validateDigest } from "./digest.ts";
import { invalidArgument } from "../base/errors.ts";

export const DEFAULT_DOMAIN = "docker.io";
export const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
export const OFFICIAL_REPO_PREFIX = "library/";
export const DEFAULT_TAG = "latest";
const NAME_TOTAL_LENGTH_MAX = 255;

// distribution/reference's grammar, as regular expressions.
const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const DOMAIN = `(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";

const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const SHA256_HEX_RE = /^[a-f0-9]{64}$/;

/** A parsed, normalised image reference. */
export interface Reference {
  /** Registry host, with port when given: `docker.io`, `127.0.0.1:5000`. */
  readonly domain: string;
  /** Repository path inside the registry: `library/busybox`. */
  readonly path: string;
  /** `domain/path`: the normalised name without tag or digest. */
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
  /** The normalised reference: `name[:tag][@digest]`. */
  toString(): string;
}

/**
 * Parses a reference and normalises it: docker.io domain and `library/` for official images, and
 * the `latest` tag when neither tag nor digest is given. Throws invalidArgument naming the reference.
 */
export function parseReference(ref: string, options: { defaultTag?: boolean } = {}): Reference {
  const parsed = parseNormalized(ref);
  if (parsed.tag === undefined && parsed.digest === undefined && options.defaultTag !== false) {
    return makeReference(parsed.domain, parsed.path, DEFAULT_TAG, undefined);
  }
  return parsed;
}

/** Like parseReference but never adds a default tag: `busybox` → `docker.io/library/busybox`. */
export function parseNormalizedName(ref: string): Reference {
  return parseNormalized(ref);
}

/** The short form docker prints: `docker.io/library/busybox:latest` → `busybox:latest`. */
export function familiarString(ref: Reference): string {
  let name = ref.name;
  if (ref.domain === DEFAULT_DOMAIN) {
    name =
      ref.path.startsWith(OFFICIAL_REPO_PREFIX) && !ref.path.slice(OFFICIAL_REPO_PREFIX.length).includes("/")
        ? ref.path.slice(OFFICIAL_REPO_PREFIX.length)
        : ref.path;
  }
  return name + (ref.tag !== undefined ? `:${ref.tag}` : "") +
    (ref.digest !== undefined ? `@${ref.digest}` : "");
}

function parseNormalized(ref: string): Reference {
  const fail = (why: string) => invalidArgument(`Invalid reference "${ref}": ${why}`);
  if (ref === "") throw fail("empty");
  if (ref !== ref.trim() || /\s/.test(ref)) throw fail("contains whitespace");
  if (SHA256_HEX_RE.test(ref)) throw fail("a 64-hex-digit string is an image id, not a repository name");

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      validateDigest(digest);
    } catch (err) {
      throw fail(
        `bad digest "${digest}": ${(err as Error).message.replace(/^Invalid digest "[^"]*": /, "")}`,
      );
    }
  }
  let tag: string | undefined;
  // A colon after the last slash separates the tag; one before it belongs to a host:port.
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw fail(`bad tag "${tag}"`);
  }
  if (rest === "") throw fail("missing repository name");

  let domain: string;
  let path: string;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  // As in docker: the first component is a registry host only if it looks like one.
  if (
    slash < 0 ||
    (!first.includes(".") && !first.includes(":") && first !== "localhost" && first.toLowerCase() === first)
  ) {
    domain = DEFAULT_DOMAIN;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (!DOMAIN_RE.test(domain)) throw fail(`bad registry host "${domain}"`);
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_REPO_PREFIX + path;
  if (path !== path.toLowerCase()) throw fail("repository name must be lowercase");
  if (!PATH_RE.test(path)) throw fail(`bad repository name "${path}"`);
  if (`${domain}/${path}`.length > NAME_TOTAL_LENGTH_MAX) {
    throw fail(`repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return makeReference(domain, path, tag, digest);
}

function makeReference(
  domain: string,
  path: string,
  tag: string | undefined,
  digest: string | undefined,
): Reference {
  const name = `${domain}/${path}`;
  const text = name + (tag !== undefined ? `:${tag}` : "") + (digest !== undefined ? `@${digest}` : "");
  return {
    domain,
    path,
    name,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
    toString: () => text,
  };
}
