/**
 * Where a pull's keys for encrypted layers come from: the request (berth run --key) and the daemon's
 * configured key folders, containerd's `[stream_processors]` entries for the ocicrypt decoder
 * (imgcrypt's ctd-decoder with `--decryption-keys-path`). Berth decrypts in-process for the media types
 * those entries accept instead of running the decoder binary.
 */
import type { NamedKey } from "../../oci/imgcrypt/mod.ts";
import { isEncryptedLayerType } from "../../oci/imgcrypt/spec.ts";
import type { DecryptionKeys } from "../unpack/mod.ts";

/** containerd's `[stream_processors."<id>"]` table. */
export interface StreamProcessor {
  readonly accepts: readonly string[];
  readonly returns: string;
  readonly path: string;
  readonly args: readonly string[];
}

const KEYS_PATH_FLAG = "--decryption-keys-path";

/** The key folders named by the stream processors that accept encrypted layers. */
export function decryptionKeysPaths(processors: Readonly<Record<string, StreamProcessor>>): string[] {
  const out: string[] = [];
  for (const p of Object.values(processors)) {
    if (!p.accepts.some(isEncryptedLayerType)) continue;
    p.args.forEach((a, i) => {
      if (a === KEYS_PATH_FLAG && p.args[i + 1]) out.push(p.args[i + 1]!);
      else if (a.startsWith(`${KEYS_PATH_FLAG}=`)) out.push(a.slice(KEYS_PATH_FLAG.length + 1));
    });
  }
  return [...new Set(out)];
}

/** The request's keys, then every key under the configured folders (read at each unpack, as ctd-decoder). */
export function decryptionKeys(request: readonly Uint8Array[], folders: readonly string[]): DecryptionKeys {
  return async (): Promise<NamedKey[]> => {
    // Key parsing (jose) loads for a pull that meets an encrypted layer, not with the daemon.
    const { parsePrivateKey, readKeyDir } = await import("../../oci/imgcrypt/keys.ts");
    return [
      ...request.map((k, i) => parsePrivateKey(k, `key ${i + 1} of the request`)),
      ...(await Promise.all(folders.map(readKeyDir))).flat(),
    ];
  };
}
