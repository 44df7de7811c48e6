/**
 * OCI digests (opencontainers/go-digest): `algorithm:hex`, validated per algorithm; the
 * canonical algorithm is sha256.
 */
import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from '../errdefs.js';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

export interface ParsedDigest {
  algorithm: string;
  hex: string;
}

/** Validates a digest string (go-digest Digest.Validate); InvalidArgument when malformed. */
export function parseDigest(d: string): ParsedDigest {
  const i = d.indexOf(':');
  if (i <= 0) throw invalidArgument(`invalid digest ${JSON.stringify(d)}: missing algorithm`, { digest: d });
  const algorithm = d.slice(0, i);
  const hex = d.slice(i + 1);
  const len = HEX_LENGTH[algorithm];
  if (len === undefined) throw invalidArgument(`invalid digest ${JSON.stringify(d)}: unsupported algorithm`, { digest: d });
  if (hex.length !== len || !/^[a-f0-9]+$/.test(hex)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(d)}: invalid ${algorithm} hex`, { digest: d });
  }
  return { algorithm, hex };
}

export function isDigest(d: string): boolean {
  try {
    parseDigest(d);
    return true;
  } catch {
    return false;
  }
}

/** Incremental canonical (sha256) digester. */
export class Digester {
  private hash: Hash = createHash('sha256');
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  reset(): void {
    this.hash = createHash('sha256');
  }
  /** The digest so far (the digester stays usable). */
  digest(): string {
    return `sha256:${this.hash.copy().digest('hex')}`;
  }
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
