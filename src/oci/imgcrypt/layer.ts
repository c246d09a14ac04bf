/**
 * One layer's encryption metadata, as ocicrypt's EncryptLayer / DecryptLayer handle it: the private
 * options are wrapped for the recipients into the keys annotation, the public ones are the pubopts
 * annotation.
 */
import { failedPrecondition, invalidArgument, notImplemented } from "../../base/errors.ts";
import type { Descriptor } from "../image.ts";
import { unwrapKey, wrapKeys } from "./jwe.ts";
import type { NamedKey } from "./keys.ts";
import {
  decodeLayerOptions,
  encodePrivateOptions,
  encodePublicOptions,
  encryptLayerStream,
  type LayerCipherOptions,
} from "./layer_cipher.ts";
import {
  ANNOTATION_ENC_PREFIX,
  ANNOTATION_KEYS_JWE,
  ANNOTATION_KEYS_PGP,
  ANNOTATION_KEYS_PKCS7,
  ANNOTATION_KEYS_PROVIDER_PREFIX,
  ANNOTATION_PUBOPTS,
  isEncryptedLayerType,
} from "./spec.ts";

const b64 = (b: Uint8Array) => {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
};

function unb64(s: string, what: string): Uint8Array {
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    throw invalidArgument(`Malformed ${what}: not base64`);
  }
}

const layerName = (desc: Descriptor) => `layer ${desc.digest}`;

/**
 * Unwraps the options of an encrypted layer with `keys`: the clear errors for a layer without keys
 * annotation, a scheme Berth does not read, no key given, and no key that fits.
 */
export async function unwrapLayerOptions(
  desc: Descriptor,
  keys: readonly NamedKey[],
): Promise<LayerCipherOptions> {
  const what = layerName(desc);
  const a = desc.annotations ?? {};
  const jwe = a[ANNOTATION_KEYS_JWE] ?? "";
  if (jwe === "") {
    const other = [ANNOTATION_KEYS_PKCS7, ANNOTATION_KEYS_PGP].find((k) => a[k]) ??
      Object.keys(a).find((k) => k.startsWith(ANNOTATION_KEYS_PROVIDER_PREFIX));
    if (other) {
      throw notImplemented(`Cannot decrypt ${what}: its key is wrapped as ${other}, only JWE is supported`);
    }
    throw invalidArgument(
      `Cannot decrypt ${what}: it has no ${ANNOTATION_KEYS_JWE} annotation (missing annotations needed for decryption)`,
    );
  }
  const pubopts = a[ANNOTATION_PUBOPTS] ?? "";
  if (pubopts === "") {
    throw invalidArgument(
      `Cannot decrypt ${what}: it has no ${ANNOTATION_PUBOPTS} annotation (no cipher or HMAC)`,
    );
  }
  if (keys.length === 0) {
    throw failedPrecondition(
      `Cannot decrypt ${what}: missing private key needed for decryption (its key is wrapped for JWE recipients; give --key PRIVATE.pem)`,
    );
  }
  for (const entry of jwe.split(",")) {
    const payload = await unwrapKey(unb64(entry, `${ANNOTATION_KEYS_JWE} annotation of ${what}`), keys);
    if (payload) return decodeLayerOptions(payload, unb64(pubopts, `${ANNOTATION_PUBOPTS} of ${what}`));
  }
  throw failedPrecondition(
    `Cannot decrypt ${what}: none of the private keys (${
      keys.map((k) => k.source).join(", ")
    }) can unwrap its key`,
  );
}

/** Whether `desc` is an encrypted layer (by media type, as imgcrypt's IsEncryptedDiff). */
export const isEncryptedLayer = (desc: Descriptor) => isEncryptedLayerType(desc.mediaType);

export interface LayerEncryption {
  readonly stream: AsyncIterable<Uint8Array>;
  /** Once the stream is read: the annotations of the encrypted layer's descriptor. */
  finalize(): Promise<Record<string, string>>;
}

/** Encrypts a plain layer for `recipients`; the annotations come after the ciphertext (the HMAC). */
export function encryptLayer(
  plain: AsyncIterable<Uint8Array>,
  desc: Descriptor,
  recipients: readonly NamedKey[],
): LayerEncryption {
  const enc = encryptLayerStream(plain, desc.digest);
  return {
    stream: enc.stream,
    async finalize() {
      const opts = enc.finalize();
      const wrapped = await wrapKeys(encodePrivateOptions(opts.private), recipients);
      return {
        ...withoutEncryptionAnnotations(desc.annotations),
        [ANNOTATION_KEYS_JWE]: b64(wrapped),
        [ANNOTATION_PUBOPTS]: b64(encodePublicOptions(opts.public)),
      };
    },
  };
}

/** ocicrypt's FilterOutAnnotations: everything but org.opencontainers.image.enc.*. */
export function withoutEncryptionAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(annotations ?? {}).filter(([k]) => !k.startsWith(ANNOTATION_ENC_PREFIX)),
  );
}
