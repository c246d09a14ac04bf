/**
 * Keys for image encryption, read as ocicrypt's utils.ParsePrivateKey / ParsePublicKey read them: PEM or
 * DER, PKCS#8, PKCS#1 (RSA) or SEC 1 (EC) private keys, SPKI public keys. Password-protected keys and
 * PKCS#11, PGP and PKCS#7 material are not supported (JWE recipients only).
 */
import type * as NodeBuffer from "node:buffer";
import type { KeyObject } from "node:crypto";
import { nodeCrypto } from "../../base/node_crypto.ts";
import { failedPrecondition, invalidArgument } from "../../base/errors.ts";

export interface NamedKey {
  /** Where the key came from (a file path), for error messages. */
  readonly source: string;
  readonly key: KeyObject;
}

function parse(data: Uint8Array, source: string, kind: "private" | "public"): KeyObject {
  const text = new TextDecoder().decode(data);
  if (/ENCRYPTED/.test(text)) {
    throw failedPrecondition(`Cannot use ${kind} key ${source}: password-protected keys are not supported`);
  }
  // Loaded here, not by a static import: the daemon's start would otherwise load node's compatibility layer.
  const { Buffer } = process.getBuiltinModule("node:buffer") as typeof NodeBuffer;
  const der = Buffer.from(data);
  const attempts: Array<() => KeyObject> = text.includes("-----BEGIN")
    ? [
      () =>
        kind === "private"
          ? nodeCrypto().createPrivateKey({ key: text, format: "pem" })
          : nodeCrypto().createPublicKey(text),
    ]
    : kind === "private"
    ? (["pkcs8", "pkcs1", "sec1"] as const).map((type) => () =>
      nodeCrypto().createPrivateKey({ key: der, format: "der", type })
    )
    : [() => nodeCrypto().createPublicKey({ key: der, format: "der", type: "spki" })];
  let last: unknown;
  for (const attempt of attempts) {
    try {
      const key = attempt();
      if (key.asymmetricKeyType !== "rsa" && key.asymmetricKeyType !== "ec") {
        throw new Error(`a ${key.asymmetricKeyType} key cannot wrap JWE keys (use RSA or EC)`);
      }
      return key;
    } catch (err) {
      last = err;
    }
  }
  throw invalidArgument(`Cannot read ${kind} key ${source}: ${(last as Error).message}`);
}

export function parsePrivateKey(data: Uint8Array, source: string): NamedKey {
  return { source, key: parse(data, source, "private") };
}

export function parsePublicKey(data: Uint8Array, source: string): NamedKey {
  // node:crypto would take the public half of a private key; ocicrypt's ParsePublicKey does not.
  if (new TextDecoder().decode(data).includes("PRIVATE KEY")) {
    throw invalidArgument(`Cannot use ${source} as a recipient: it is a private key; give the public key`);
  }
  return { source, key: parse(data, source, "public") };
}

/** Reads private key files. */
export async function readPrivateKeys(paths: readonly string[]): Promise<NamedKey[]> {
  return await Promise.all(paths.map(async (p) => parsePrivateKey(await readKeyFile(p), p)));
}

async function readKeyFile(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    throw invalidArgument(`Cannot read key ${path}: ${(err as Error).message}`);
  }
}

/**
 * Every key file under `dir`, as ctd-decoder's `--decryption-keys-path` walks it: each regular file
 * must be a private key, and a symbolic link is an error.
 */
export async function readKeyDir(dir: string): Promise<NamedKey[]> {
  const out: NamedKey[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && d === dir) return;
      throw invalidArgument(`Cannot read decryption keys path ${d}: ${(err as Error).message}`);
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.isSymlink) {
        throw invalidArgument(
          `Cannot read decryption keys path ${dir}: symbolic links are not supported (${p})`,
        );
      }
      if (e.isDirectory) await walk(p);
      else if (e.isFile) out.push(parsePrivateKey(await readKeyFile(p), p));
    }
  };
  await walk(dir);
  return out;
}

/** `jwe:PATH` (nerdctl's and ctr-enc's --recipient); the other schemes are named as unsupported. */
export async function readRecipient(spec: string): Promise<NamedKey> {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? "" : spec.slice(0, colon);
  if (scheme !== "jwe") {
    if (["pgp", "pkcs7", "pkcs11", "provider"].includes(scheme)) {
      throw invalidArgument(`Cannot use recipient "${spec}": only jwe: recipients are supported`);
    }
    throw invalidArgument(`Cannot use recipient "${spec}": expected jwe:PUBKEY.pem`);
  }
  const path = spec.slice(colon + 1);
  return parsePublicKey(await readKeyFile(path), path);
}
