// The checksum of cuda/gguf_vram.h on the host: the same function the GPU
// computes over VRAM, so the two can be compared. A checksum is a sum of
// per-word terms, so it can be computed in pieces that start on 8-byte
// boundaries and added (mod 2^64) before finishing.

import { native } from "./native.ts";

export function hostChecksum(data: Uint8Array): bigint {
  return BigInt(native().gv_checksum_host(data, BigInt(data.length)));
}

/** The raw sum of `data`, whose first byte is word `firstWord` of the whole range. */
export function hostChecksumPartial(data: Uint8Array, firstWord: number): bigint {
  return BigInt(native().gv_checksum_host_partial(data, BigInt(data.length), BigInt(firstWord)));
}

/** Finish a sum of partial checksums over a range of `bytes` bytes. */
export function finishChecksum(sum: bigint, bytes: number): bigint {
  return BigInt(native().gv_checksum_finish(BigInt.asUintN(64, sum), BigInt(bytes)));
}
