/** OCI content digests (`algorithm:hex`), as containerd's go-digest accepts them. */
import { invalidArgument } from "../base/errors.ts";

/** The digest algorithms containerd accepts, with the length of their hex encoding. */
const ALGORITHMS: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

export interface ParsedDigest {
  readonly algorithm: string;
  readonly encoded: string;
}

/** Splits and validates an OCI digest (`sha256:<64 hex>`); throws invalidArgument when malformed. */
export function parseDigest(digest: string): ParsedDigest {
  const i = digest.indexOf(":");
  const algorithm = i < 0 ? "" : digest.slice(0, i);
  const encoded = i < 0 ? "" : digest.slice(i + 1);
  const length = ALGORITHMS[algorithm];
  if (length === undefined) {
    throw invalidArgument(`Invalid digest ${JSON.stringify(digest)}: unsupported or missing algorithm`);
  }
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw invalidArgument(
      `Invalid digest ${JSON.stringify(digest)}: encoded part must be ${length} lower-case hex digits`,
    );
  }
  return { algorithm, encoded };
}

/** Returns `digest`, or throws invalidArgument unless it is a well-formed digest. */
export function validateDigest(digest: string): string {
  parseDigest(digest);
  return digest;
}
