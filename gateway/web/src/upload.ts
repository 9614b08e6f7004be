// A `.blend` in the browser before it is sent: its content hash, the
// gateway's `ContentHash` (blake3 of the whole file), computed in slices so
// that a large file neither sits in memory at once nor freezes the page;
// the page then asks the gateway whether this artist uploaded it before.

import { blake3 } from "@noble/hashes/blake3";
import { bytesToHex } from "@noble/hashes/utils";
import type { Hex } from "./types";

/** How much of the file is read and hashed at a time. */
export const HASH_SLICE = 4 * 1024 * 1024;

/** How far hashing got: bytes hashed of the total. */
export type HashProgress = (done: number, total: number) => void;

/**
 * The blake3 hash of `file`, as `0x` hex. Reads `slice` bytes at a time;
 * each read yields to the page, so it stays responsive. Throws a
 * `DOMException` named `AbortError` once `signal` aborts.
 */
export async function hashFile(
  file: Blob,
  progress: HashProgress = () => {},
  signal?: AbortSignal,
  slice = HASH_SLICE,
): Promise<Hex> {
  const hasher = blake3.create({});
  progress(0, file.size);
  for (let offset = 0; offset < file.size; offset += slice) {
    signal?.throwIfAborted();
    const bytes = new Uint8Array(await file.slice(offset, offset + slice).arrayBuffer());
    hasher.update(bytes);
    progress(Math.min(offset + slice, file.size), file.size);
  }
  signal?.throwIfAborted();
  return `0x${bytesToHex(hasher.digest())}`;
}

/** Whether a file's name says it is a `.blend` (Blender's own extension; `.blend1` backups are not). */
export function isBlendName(name: string): boolean {
  return /\.blend$/i.test(name);
}

/** `1.5 MB`: a byte count for people (powers of 1000, as file managers show them). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = next;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** A share as a whole percentage (0 when there is nothing to share, never above 100). */
export function percent(done: number, total: number): number {
  if (total <= 0) return done > 0 ? 100 : 0;
  return Math.min(100, Math.floor((done / total) * 100));
}
