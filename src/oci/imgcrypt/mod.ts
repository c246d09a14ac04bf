/**
 * Encrypted images in the ocicrypt format (containers/ocicrypt, containerd/imgcrypt): encrypted layer
 * media types and annotations, AES-256-CTR + HMAC-SHA256 layers, JWE key wrapping (RSA-OAEP,
 * ECDH-ES+A256KW), and whole-image encryption and decryption over a BlobStore.
 */
export {
  ANNOTATION_KEYS_JWE,
  ANNOTATION_PUBOPTS,
  encryptedLayerType,
  isEncryptedLayerType,
  MediaTypeEnc,
  plainLayerType,
} from "./spec.ts";
export {
  type NamedKey,
  parsePrivateKey,
  parsePublicKey,
  readKeyDir,
  readPrivateKeys,
  readRecipient,
} from "./keys.ts";
export { decryptLayerStream, type LayerCipherOptions, verifyLayerHmac } from "./layer_cipher.ts";
export { encryptLayer, isEncryptedLayer, unwrapLayerOptions, withoutEncryptionAnnotations } from "./layer.ts";
export { type CryptImageOptions, decryptImage, encryptImage } from "./image.ts";
