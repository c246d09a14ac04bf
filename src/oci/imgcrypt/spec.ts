/**
 * The ocicrypt format as facts, from containers/ocicrypt (spec/spec.go, encryption.go,
 * blockcipher/blockcipher.go) and containerd/imgcrypt (images/encryption/encryption.go).
 */
import { MediaType } from "../image.ts";

/** Annotation holding the comma-separated base64 JWE objects that wrap a layer's private options. */
export const ANNOTATION_KEYS_JWE = "org.opencontainers.image.enc.keys.jwe";
export const ANNOTATION_KEYS_PKCS7 = "org.opencontainers.image.enc.keys.pkcs7";
export const ANNOTATION_KEYS_PGP = "org.opencontainers.image.enc.keys.pgp";
export const ANNOTATION_KEYS_PROVIDER_PREFIX = "org.opencontainers.image.enc.keys.provider.";
/** base64 of the public options JSON: cipher, HMAC, public cipher options. */
export const ANNOTATION_PUBOPTS = "org.opencontainers.image.enc.pubopts";
/** ocicrypt.FilterOutAnnotations drops every annotation under this prefix on decryption. */
export const ANNOTATION_ENC_PREFIX = "org.opencontainers.image.enc.";

/** The only layer cipher ocicrypt defines. */
export const CIPHER_AES256_CTR = "AES_256_CTR_HMAC_SHA256";

export const MediaTypeEnc = {
  Layer: "application/vnd.oci.image.layer.v1.tar+encrypted",
  LayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
  LayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
} as const;

const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar";

/** imgcrypt's encryptLayer: the encrypted type for each plain layer type it accepts. */
const TO_ENCRYPTED: Readonly<Record<string, string>> = {
  [MediaType.DockerLayerGzip]: MediaTypeEnc.LayerGzip,
  [DOCKER_LAYER]: MediaTypeEnc.Layer,
  [MediaType.OciLayerGzip]: MediaTypeEnc.LayerGzip,
  [MediaType.OciLayerZstd]: MediaTypeEnc.LayerZstd,
  [MediaType.OciLayer]: MediaTypeEnc.Layer,
};

/**
 * The plain type of each encrypted one. imgcrypt's decryptLayer gives Docker types back for gzip and
 * tar; Berth gives the OCI ones, as skopeo does, since the manifest it lands in is an OCI manifest.
 */
const TO_PLAIN: Readonly<Record<string, string>> = {
  [MediaTypeEnc.LayerGzip]: MediaType.OciLayerGzip,
  [MediaTypeEnc.LayerZstd]: MediaType.OciLayerZstd,
  [MediaTypeEnc.Layer]: MediaType.OciLayer,
};

/** imgcrypt's IsEncryptedDiff. */
export const isEncryptedLayerType = (mt: string): boolean => mt in TO_PLAIN;
export const encryptedLayerType = (mt: string): string | undefined => TO_ENCRYPTED[mt];
export const plainLayerType = (mt: string): string | undefined => TO_PLAIN[mt];
