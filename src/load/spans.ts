// Jobs for the upload threads, in shared memory: the spans of an upload packed
// into one word array every Worker reads without a copy, a claim slot per span,
// and the shared cursor (src/cuda/upload.ts). The hot loop itself is native
// (gv_upload_step): a thread claims a run of spans, reads each from the file
// straight into a pinned slot and enqueues its copies.
//
// Runs shrink as the work does: each takes 1/P of the spans left (P threads),
// so first runs are long sequential reads (what a cold disk's readahead wants)
// and the last are one span (no thread left with a tail while the others wait,
// what a warm page cache at 50 GB/s wants). Measured on an H100 host, same run:
// warm 7B at 49.3 GB/s (one contiguous share per worker: 45.8; 1/(2P) runs:
// 49.2; runs of 4 spans: 48.3), cold 0.5B at 1.7 GB/s (1.6, 1.4, 1.4).

import { UploadShared, type Schedule } from "../cuda/index.ts";
import type { UploadSpan } from "./plan.ts";

/** One upload's work, as every thread sees it. */
export interface UploadJob {
  /** Packed spans (gv_upload_step's layout): word offsets, then one record per span. */
  readonly spans: BigUint64Array;
  readonly spanCount: number;
  /** claims[i]: the worker (id + 1) that took span i; 0 while unclaimed. */
  readonly claims: Uint32Array;
  readonly shared: UploadShared;
  /** Bytes the spans read: what the upload must move. */
  readonly bytes: number;
}

/** What crosses to a Worker: the same shared memory, as plain buffers. */
export interface UploadJobMessage {
  readonly spans: BigUint64Array;
  readonly spanCount: number;
  readonly claims: Uint32Array;
  readonly shared: SharedArrayBuffer;
}

/** Pack `spans` (each naming its file by shard) for threads that share `parties` ways. */
export function newUploadJob(spans: readonly UploadSpan[], fds: readonly number[], parties: number, schedule: Schedule): UploadJob {
  const n = spans.length;
  const words = n + 1 + spans.reduce((w, s) => w + 4 + s.pieces.length, 0);
  const packed = new BigUint64Array(new SharedArrayBuffer(Math.max(8, words * 8)));
  let at = n + 1;
  spans.forEach((s, i) => {
    const fd = fds[s.shard];
    if (fd === undefined) throw new Error(`span ${i} reads shard ${s.shard}, which has no open file`);
    packed[i] = BigInt(at);
    packed[at++] = BigInt(fd);
    packed[at++] = BigInt(s.fileOffset);
    packed[at++] = BigInt(s.bytes);
    packed[at++] = BigInt(s.pieces.length / 3);
    for (const p of s.pieces) packed[at++] = BigInt(p);
  });
  packed[n] = BigInt(at);
  return {
    spans: packed,
    spanCount: n,
    claims: new Uint32Array(new SharedArrayBuffer(Math.max(4, n * 4))),
    shared: new UploadShared({ parties, schedule }),
    bytes: spans.reduce((b, s) => b + s.bytes, 0),
  };
}

export function jobMessage(job: UploadJob): UploadJobMessage {
  return { spans: job.spans, spanCount: job.spanCount, claims: job.claims, shared: job.shared.buffer };
}

export function jobFromMessage(m: UploadJobMessage): UploadJob {
  return { spans: m.spans, spanCount: m.spanCount, claims: m.claims, shared: new UploadShared(m.shared), bytes: 0 };
}

/**
 * The invariant of every upload, checked after it: each span was claimed by
 * exactly one thread (a second claim fails in the native step), none was left,
 * and the bytes the threads moved are the bytes the plan reads. Null when it holds.
 */
export function uploadInvariantBroken(job: UploadJob, movedBytes: number): string | null {
  const unclaimed = job.claims.subarray(0, job.spanCount).findIndex((c) => c === 0);
  if (unclaimed >= 0) return `span ${unclaimed} of ${job.spanCount} was never claimed`;
  if (job.shared.nextSpan < job.spanCount) return `the cursor stopped at span ${job.shared.nextSpan} of ${job.spanCount}`;
  if (movedBytes !== job.bytes || job.shared.bytesDone !== job.bytes) {
    return `the threads moved ${movedBytes} bytes (counted ${job.shared.bytesDone}); the plan reads ${job.bytes}`;
  }
  return null;
}

// ─── host checksums of file ranges (verify) ───────────────────────────────────

/** Tensors are checksummed in chunks of this much, so one large tensor spreads over every thread. */
export const CHECKSUM_CHUNK = 4 * 1024 * 1024;

export interface ChecksumJob {
  /** (fd, file offset, bytes, first word) per chunk. */
  readonly chunks: BigUint64Array;
  /** The partial sum of each chunk, filled by the threads. */
  readonly sums: BigUint64Array;
  readonly shared: UploadShared;
  /** Chunks [first[t], first[t + 1]) belong to range t. */
  readonly first: readonly number[];
}

/** Chunks of `ranges` (each a file range of a shard), in shared memory. */
export function newChecksumJob(ranges: readonly { shard: number; fileOffset: number; bytes: number }[], fds: readonly number[]): ChecksumJob {
  const first: number[] = [];
  const quads: number[] = [];
  for (const r of ranges) {
    first.push(quads.length / 4);
    for (let done = 0; done < r.bytes; done += CHECKSUM_CHUNK) quads.push(fds[r.shard]!, r.fileOffset + done, Math.min(CHECKSUM_CHUNK, r.bytes - done), done / 8);
  }
  first.push(quads.length / 4);
  const chunks = new BigUint64Array(new SharedArrayBuffer(Math.max(8, quads.length * 8)), 0, quads.length);
  quads.forEach((q, i) => (chunks[i] = BigInt(q)));
  const n = quads.length / 4;
  return { chunks, sums: new BigUint64Array(new SharedArrayBuffer(Math.max(8, n * 8)), 0, n), shared: new UploadShared({ parties: 1, schedule: "chunks" }), first };
}

/** The raw sum of range t: its chunks' partial sums added (mod 2^64). */
export function rangeSum(job: ChecksumJob, t: number): bigint {
  let sum = 0n;
  for (let c = job.first[t]!; c < job.first[t + 1]!; c++) sum += job.sums[c]!;
  return BigInt.asUintN(64, sum);
}
