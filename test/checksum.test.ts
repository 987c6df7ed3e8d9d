// The host half of verify, without a GPU: the native checksum against a plain
// TypeScript transcription of its definition (cuda/gguf_vram.h), and file ranges
// summed chunk by chunk and piece by piece by gv_checksum_file_step, at sizes
// that end inside a word, inside a piece and inside a chunk.

import { beforeAll, expect, test } from "bun:test";
import { mkdtempSync, truncateSync, writeFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finishChecksum, hostChecksum, hostChecksumPartial, openCuda } from "../src/cuda/index.ts";
import { checksumHere } from "../src/load/pool.ts";
import { CHECKSUM_CHUNK, newChecksumJob, rangeSum } from "../src/load/spans.ts";
import { tempDirs } from "./support/temp.ts";

const tempDir = tempDirs(); // removed after this file's tests

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

function mix64(z: bigint): bigint {
  z ^= z >> 30n;
  z = (z * 0xbf58476d1ce4e5b9n) & M64;
  z ^= z >> 27n;
  z = (z * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** The definition, word by word: Σ mix64(w_i ^ i·GOLDEN), the last word zero-padded, then mix64(sum ^ bytes). */
function referenceChecksum(data: Uint8Array): bigint {
  let sum = 0n;
  for (let i = 0; i * 8 < data.length; i++) {
    let w = 0n;
    for (let b = 7; b >= 0; b--) w = (w << 8n) | BigInt(data[i * 8 + b] ?? 0);
    sum = (sum + mix64(w ^ ((BigInt(i) * GOLDEN) & M64))) & M64;
  }
  return mix64(sum ^ BigInt(data.length));
}

/** Deterministic bytes (xorshift32), so a failure reproduces. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

beforeAll(async () => {
  await openCuda();
});

test("the native checksum is the definition, at every tail length", () => {
  for (const n of [0, 1, 7, 8, 9, 15, 16, 17, 1003]) {
    const data = bytes(n, n + 1);
    expect([n, hostChecksum(data)]).toEqual([n, referenceChecksum(data)]);
  }
  // A flipped bit, a swapped pair of words and a zero word appended all change it.
  const data = bytes(64, 7);
  const flipped = data.slice();
  flipped[13]! ^= 1;
  const swapped = new Uint8Array([...data.subarray(8, 16), ...data.subarray(0, 8), ...data.subarray(16)]);
  const longer = new Uint8Array([...data, ...new Uint8Array(8)]);
  for (const other of [flipped, swapped, longer]) expect(hostChecksum(other)).not.toBe(hostChecksum(data));
});

test("partial sums from 8-byte boundaries add up to the whole", () => {
  const data = bytes(1000 * 8 + 5, 3);
  const sum = hostChecksumPartial(data.subarray(0, 8 * 333), 0) + hostChecksumPartial(data.subarray(8 * 333), 333);
  expect(finishChecksum(sum, data.length)).toBe(hostChecksum(data));
});

test("file ranges checksummed in chunks and pieces equal the checksum of their bytes", async () => {
  const dir = tempDir("gguf-vram-checksum-");
  const path = join(dir, "data.bin");
  const file = bytes(CHECKSUM_CHUNK * 2 + 300_000, 11);
  writeFileSync(path, file);
  const ranges = [
    { shard: 0, fileOffset: 0, bytes: 0 },
    { shard: 0, fileOffset: 3, bytes: 5 }, // inside one word, unaligned
    { shard: 0, fileOffset: 32, bytes: (256 << 10) + 13 }, // a piece and a tail
    { shard: 0, fileOffset: 1001, bytes: CHECKSUM_CHUNK + (256 << 10) * 3 + 7 }, // chunks, pieces and a tail
    { shard: 0, fileOffset: 0, bytes: file.length }, // the whole file
  ];
  const fd = openSync(path, "r");
  try {
    const job = newChecksumJob(ranges, [fd]);
    await checksumHere(job, path);
    ranges.forEach((r, i) => {
      const want = hostChecksum(file.subarray(r.fileOffset, r.fileOffset + r.bytes));
      expect([i, finishChecksum(rangeSum(job, i), r.bytes)]).toEqual([i, want]);
    });
    expect(job.shared.bytesDone).toBe(ranges.reduce((n, r) => n + r.bytes, 0));

    // A range past the end of a file that shrank: FILE_CHANGED, never a checksum of short data.
    truncateSync(path, file.length - 100);
    await expect(checksumHere(newChecksumJob([ranges[4]!], [fd]), path)).rejects.toMatchObject({ code: "FILE_CHANGED" });
  } finally {
    closeSync(fd);
  }
});
