/**
 * ocicrypt's JWE key wrapper (keywrap/jwe/keywrapper_jwe.go): the layer's private options JSON is the
 * payload of one JWE, content-encrypted with A256GCM, with one recipient per public key: RSA-OAEP for
 * RSA keys, ECDH-ES+A256KW for EC keys. go-jose writes it in the JSON serialization, flattened when there
 * is one recipient, general otherwise; both are read.
 *
 * The npm `jose` library does the JWE work: Web Crypto has the primitives but not ECDH-ES's Concat KDF
 * nor the JWE serializations, and a hand-written JWE is where wrapped-key attacks live.
 */
import type { KeyObject } from "node:crypto";
import {
  type CryptoKey as JoseKey,
  flattenedDecrypt,
  FlattenedEncrypt,
  type FlattenedJWE,
  generalDecrypt,
  GeneralEncrypt,
  type GeneralJWE,
  importPKCS8,
  importSPKI,
} from "jose";
import { invalidArgument } from "../../base/errors.ts";
import type { NamedKey } from "./keys.ts";

const CONTENT_ENCRYPTION = "A256GCM";
/** ocicrypt's accepted key algorithms (UnwrapKey). */
const KEY_ALGORITHMS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"];

/** ocicrypt's addPubKeys: RSA-OAEP for RSA, ECDH-ES+A256KW for ECDSA keys. */
const algorithmFor = (key: KeyObject) => key.asymmetricKeyType === "ec" ? "ECDH-ES+A256KW" : "RSA-OAEP";

async function publicKey(k: KeyObject, alg: string): Promise<JoseKey> {
  return await importSPKI(k.export({ type: "spki", format: "pem" }) as string, alg);
}

async function privateKey(k: KeyObject, alg: string): Promise<JoseKey> {
  return await importPKCS8(k.export({ type: "pkcs8", format: "pem" }) as string, alg);
}

/** One JWE (JSON serialization) of `payload` for every recipient. */
export async function wrapKeys(payload: Uint8Array, recipients: readonly NamedKey[]): Promise<Uint8Array> {
  if (recipients.length === 0) throw invalidArgument("Cannot wrap layer keys: no recipients");
  let jwe: FlattenedJWE | GeneralJWE;
  if (recipients.length === 1) {
    const alg = algorithmFor(recipients[0]!.key);
    jwe = await new FlattenedEncrypt(payload)
      .setProtectedHeader({ enc: CONTENT_ENCRYPTION })
      .setUnprotectedHeader({ alg })
      .encrypt(await publicKey(recipients[0]!.key, alg));
  } else {
    const enc = new GeneralEncrypt(payload).setProtectedHeader({ enc: CONTENT_ENCRYPTION });
    for (const r of recipients) {
      const alg = algorithmFor(r.key);
      enc.addRecipient(await publicKey(r.key, alg)).setUnprotectedHeader({ alg });
    }
    jwe = await enc.encrypt();
  }
  return new TextEncoder().encode(JSON.stringify(jwe));
}

/**
 * The payload of `jwe` if one of `keys` can unwrap it, else undefined. Malformed JWE is an error.
 */
export async function unwrapKey(jwe: Uint8Array, keys: readonly NamedKey[]): Promise<Uint8Array | undefined> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(jwe));
  } catch {
    throw invalidArgument("Malformed JWE in the layer's keys annotation: not JSON");
  }
  for (const k of keys) {
    // jose hands the protected header; go-jose puts alg in the recipient's unprotected header.
    const resolve = (
      prot: { alg?: string } | undefined,
      token: { header?: { alg?: string }; unprotected?: { alg?: string } },
    ) => {
      const alg = prot?.alg ?? token.header?.alg ?? token.unprotected?.alg ?? "";
      if (!KEY_ALGORITHMS.includes(alg)) throw new Error(`unsupported JWE key algorithm "${alg}"`);
      const fits = alg.startsWith("RSA")
        ? k.key.asymmetricKeyType === "rsa"
        : k.key.asymmetricKeyType === "ec";
      if (!fits) throw new Error("key type does not match");
      return privateKey(k.key, alg);
    };
    try {
      const opts = { keyManagementAlgorithms: KEY_ALGORITHMS };
      const res = Array.isArray(doc.recipients)
        ? await generalDecrypt(doc as unknown as GeneralJWE, resolve, opts)
        : await flattenedDecrypt(doc as unknown as FlattenedJWE, resolve, opts);
      return res.plaintext;
    } catch {
      // Not this key: try the next (ocicrypt's UnwrapKey does the same).
    }
  }
  return undefined;
}
